"""Objectives: seq-JEPA's prediction loss, SIGReg and the LeJEPA objective, VICReg terms."""

from jepa_blocks.losses.lejepa import LeJEPALoss, LeJEPAOutput
from jepa_blocks.losses.masked import MASKED_LOSSES, masked_prediction_loss
from jepa_blocks.losses.seq_jepa import SeqJEPALoss, seq_jepa_loss
from jepa_blocks.losses.sigreg import SIGReg, sigreg, sigreg_quadrature
from jepa_blocks.losses.vicreg import VICRegLoss, covariance, variance

__all__ = [
    "LeJEPALoss",
    "MASKED_LOSSES",
    "masked_prediction_loss",
    "LeJEPAOutput",
    "SIGReg",
    "SeqJEPALoss",
    "VICRegLoss",
    "covariance",
    "seq_jepa_loss",
    "sigreg",
    "sigreg_quadrature",
    "variance",
]
