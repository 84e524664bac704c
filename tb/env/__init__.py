"""pyuvm verification environment of the parameter loader (cnn_param_top).

One class per role, one small module each (docs/testbench.md):

config       EnvConfig, BackPressure, GoldenData, error flag bits
items        SegmentItem (a whole segment), ResetItem, malformed(), malformed_space(),
             truncated(), pressure_plan()
sequences    WholeNetworkSeq, RandomSubsetSeq, BackpressureSeq, ResetReloadSeq, MalformedSeq
driver       SegmentDriver (s_axis_*, mem_stall, rst_n, dump_req), AcceptedSegment
stream_monitor  StreamMonitor, SegmentObservation
write_monitor   WriteMonitor, WriteBatch
scoreboard   Scoreboard (golden image, write counts, memory dump)
coverage     CoverageCollector, CoverageModel
agent        StreamAgent, WriteAgent
env          CnnParamEnv
signals      raw GPI readers used by the driver and the monitors
"""

from cosim.tb.env.config import (
    BackPressure,
    EnvConfig,
    GoldenData,
    GoldenSelectionError,
    golden_selection,
)
from cosim.tb.env.env import CnnParamEnv
from cosim.tb.env.items import ResetItem, SegmentItem, malformed, truncated
from cosim.tb.env.sequences import (
    BackpressureSeq,
    MalformedSeq,
    RandomSubsetSeq,
    ResetReloadSeq,
    SegmentSequence,
    StopStimulus,
    WholeNetworkSeq,
)

__all__ = [
    "BackPressure",
    "BackpressureSeq",
    "CnnParamEnv",
    "EnvConfig",
    "GoldenData",
    "GoldenSelectionError",
    "golden_selection",
    "MalformedSeq",
    "RandomSubsetSeq",
    "ResetItem",
    "ResetReloadSeq",
    "SegmentItem",
    "SegmentSequence",
    "StopStimulus",
    "WholeNetworkSeq",
    "malformed",
    "truncated",
]
