print("transfer-service")
