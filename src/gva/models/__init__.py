"""Classifier backbones, their 2-D -> 3-D inflation, and checkpoints.

``build_backbone(arch, num_classes, pretrained)`` -> 2-D model ``[B,3,H,W]``;
``inflate(model2d, time_kernel, init, last_n)`` -> 3-D model ``[B,3,T,H,W]`` (report in
``.inflation_report``, or use ``inflate_with_report``); ``inflate_from_plan(model2d, plan)``
rebuilds it from ``report.to_dict()``; ``save_checkpoint`` / ``load_checkpoint``.
"""

from gva.models.backbones import PretrainedWeightsError, build_backbone
from gva.models.checkpoint import load_checkpoint, save_checkpoint
from gva.models.inflate import InflationError, InflationReport, inflate, inflate_from_plan, inflate_with_report

__all__ = ["build_backbone", "inflate", "inflate_with_report", "inflate_from_plan",
           "save_checkpoint", "load_checkpoint", "InflationError", "InflationReport",
           "PretrainedWeightsError"]
