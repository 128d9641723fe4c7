print("dev-kafka")
