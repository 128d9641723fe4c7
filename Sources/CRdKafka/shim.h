#pragma once
#include <librdkafka/rdkafka.h>
// The mock cluster header must come after rdkafka.h.
#include <librdkafka/rdkafka_mock.h>
