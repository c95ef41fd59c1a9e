"""Response KD for sigmoid heads, normalised like the detection loss, and box imitation.

The classification part is the sigmoid form of Hinton's KD that LD (Zheng et al., CVPR 2022)
and CrossKD (Wang et al., CVPR 2024) use for dense detectors: per anchor and class the binary
KL between sigmoid(teacher / T) and sigmoid(student / T), times T^2, summed over anchors and
classes and divided by max(1, number of foreground anchors), the normaliser of the focal
loss. Averaging over every anchor x class instead (tens of thousands per image) makes the term
hundreds of times weaker than the focal loss it is meant to rival. Each element is modulated
by |sigmoid(s / T) - sigmoid(t / T)|^beta, the quality-focal factor of CrossKD's
KDQualityFocalLoss (beta 1; GFL's QFL, Li et al., NeurIPS 2020): without it (beta 0) the
tens of thousands of easy background elements, each a little off, outweigh the foreground
(at init its gradient at the logits is 13-43x the focal loss's, 3-6x with beta 1).

The foreground anchors are the student's own matches (the head's loss assignment; see
`Detector.match_anchors`) when the batch has targets; without targets, or where the anchors
of the compared outputs are not the student's (head KD from another family), they are
approximated by the teacher's anchors whose highest class score exceeds 0.5.

The box part imitates the teacher's box regression on the foreground anchors with an L1 loss
on the raw regression outputs (the regression loss of torchvision's RetinaNet, with the
teacher's outputs as targets; cf. Chen et al., NeurIPS 2017), with the same normaliser.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

TEACHER_SCORE_THRESHOLD = 0.5
"""Teacher anchors scoring above this stand in for the foreground when matches are missing."""


def binary_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Element-wise KL(sigmoid(t / T) || sigmoid(s / T)) of two logit tensors."""
    student_scaled = student_logits.float() / temperature
    teacher_scaled = teacher_logits.detach().float() / temperature
    soft = teacher_scaled.sigmoid()
    cross = F.binary_cross_entropy_with_logits(student_scaled, soft, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_scaled, soft, reduction="none")
    return cross - entropy


def response_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 2.0,
    *,
    positives: Tensor | int,
    beta: float = 1.0,
) -> Tensor:
    """T^2 * |p_s - p_t|^beta * binary KL summed over (N, anchors, K), over max(1, positives).

    The KL is the binary cross-entropy against the teacher's soft targets minus the targets'
    own entropy: zero (with its gradient) when the student matches the teacher.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"response KD: student logits {tuple(student_logits.shape)} != teacher "
            f"{tuple(teacher_logits.shape)}"
        )
    divergence = binary_kl(student_logits, teacher_logits, temperature)  # (N, A, K)
    if beta > 0:
        gap = (student_logits.float() / temperature).sigmoid() - (
            teacher_logits.detach().float() / temperature
        ).sigmoid()
        divergence = divergence * gap.abs().pow(beta)
    return divergence.sum() * temperature**2 / _normaliser(positives)


def box_loss(student_boxes: Tensor, teacher_boxes: Tensor, foreground: Tensor) -> Tensor:
    """L1 between (N, A, 4) regression outputs at the (N, A) foreground, over its count."""
    if student_boxes.shape != teacher_boxes.shape:
        raise ValueError(
            f"box KD: student regression {tuple(student_boxes.shape)} != teacher "
            f"{tuple(teacher_boxes.shape)}"
        )
    error = (student_boxes.float() - teacher_boxes.detach().float()).abs().sum(dim=2)  # (N, A)
    return (error * foreground.to(error.dtype)).sum() / _normaliser(foreground.sum())


def teacher_foreground(
    teacher_logits: Tensor, threshold: float = TEACHER_SCORE_THRESHOLD
) -> Tensor:
    """(N, A) anchors whose highest teacher class probability exceeds `threshold`."""
    return teacher_logits.detach().float().sigmoid().amax(dim=2) > threshold


def _normaliser(positives: Tensor | int) -> Tensor | float:
    """max(1, positives), as the focal loss normalises."""
    if isinstance(positives, Tensor):
        return positives.float().clamp_min(1.0)
    return float(max(1, positives))


class ResponseDistillation(nn.Module):
    """Response (and box) KD between two detectors whose dense outputs align anchor for anchor."""

    def __init__(
        self,
        teacher_layout: tuple[object, ...],
        student_layout: tuple[object, ...],
        *,
        temperature: float,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        if teacher_layout != student_layout:
            raise ValueError(
                "response KD needs identical anchor layouts and classes for teacher and student; "
                f"teacher {teacher_layout} != student {student_layout}"
            )
        self.temperature = temperature
        self.beta = beta

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, foreground: Tensor) -> Tensor:
        """The tempered response loss normalised by the (N, A) foreground's count."""
        return response_loss(
            student_logits,
            teacher_logits,
            self.temperature,
            positives=foreground.sum(),
            beta=self.beta,
        )
