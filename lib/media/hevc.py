"""HEVC decoder configuration record (hvcC, ISO/IEC 14496-15 8.3.3.1) and NAL unit types (sans-IO).

Rules: `HevcConfig(record)` reads the 23-byte fixed part and the NAL unit arrays (VPS 32, SPS 33,
PPS 34, SEI...) of an hvcC as Enhanced RTMP's hvc1 SequenceStart (and the legacy codec id 12)
carries it. A truncated record or a NAL length size of 3 raises HevcError (a ProtocolError).
"""
from lib.rtmp.errors import ProtocolError

NAL_VPS = 32
NAL_SPS = 33
NAL_PPS = 34
NAL_AUD = 35
IRAP_FIRST, IRAP_LAST = 16, 23          # BLA/IDR/CRA (and reserved IRAP) slices


class HevcError(ProtocolError):
    """A malformed HEVC configuration record."""


def nal_type(nal):
    return (nal[0] >> 1) & 0x3F


class HevcConfig:
    __slots__ = ("profile_idc", "level_idc", "nal_length_size", "arrays")

    def __init__(self, record):
        if len(record) < 23:
            raise HevcError("HEVC sequence header too short")
        self.profile_idc = record[1] & 0x1F
        self.level_idc = record[12]
        self.nal_length_size = (record[21] & 0x03) + 1
        if self.nal_length_size == 3:
            raise HevcError("HEVC NAL length size 3 is not allowed")
        self.arrays = {}                # NAL unit type -> [NAL units]
        pos = 23
        for _ in range(record[22]):
            if pos + 3 > len(record):
                raise HevcError("HEVC sequence header: NAL array truncated")
            kind = record[pos] & 0x3F
            count = int.from_bytes(record[pos + 1:pos + 3], "big")
            pos += 3
            for _ in range(count):
                size = int.from_bytes(record[pos:pos + 2], "big")
                nal = bytes(record[pos + 2:pos + 2 + size])
                if len(nal) != size or size < 2:
                    raise HevcError("HEVC sequence header: NAL unit truncated")
                self.arrays.setdefault(kind, []).append(nal)
                pos += 2 + size

    def parameter_sets(self):
        """VPS, SPS, PPS in that order (what an IRAP picture needs before it in Annex-B)."""
        return [nal for kind in (NAL_VPS, NAL_SPS, NAL_PPS) for nal in self.arrays.get(kind, ())]
