"""The producer side issue 3 asks for: kafka-python with the `crc32c` C extension, which kafka-python uses for
record-batch checksums when it can import it and otherwise replaces, silently, with a pure-Python CRC 2-5x slower."""

from __future__ import annotations

import crc32c
from kafka.record import util


def test_kafka_python_checks_record_batches_with_the_crc32c_extension():
    assert util._crc32c is crc32c.crc32c
    # RFC 3720 (iSCSI) appendix B.4: CRC-32C of 32 bytes of zeros
    assert util.calc_crc32c(memoryview(bytes(32))) == 0x8A9136AA
