"""Response KD (Hinton) for sigmoid classifiers: tempered binary KL on dense class logits."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def response_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0
) -> Tensor:
    """T^2 * mean binary KL between sigmoid(t/T) and sigmoid(s/T) over (N, anchors, K).

    Equal to the binary cross-entropy against the teacher's soft targets minus the targets'
    own entropy: the same gradient, and zero when the student matches the teacher.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"response KD: student logits {tuple(student_logits.shape)} != teacher "
            f"{tuple(teacher_logits.shape)}"
        )
    student_scaled = student_logits.float() / temperature
    teacher_scaled = teacher_logits.detach().float() / temperature
    soft = teacher_scaled.sigmoid()
    cross = F.binary_cross_entropy_with_logits(student_scaled, soft, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_scaled, soft, reduction="none")
    return (cross - entropy).mean() * temperature**2


class ResponseDistillation(nn.Module):
    """Response KD between two detectors whose dense logits align anchor for anchor."""

    def __init__(
        self,
        teacher_layout: tuple[object, ...],
        student_layout: tuple[object, ...],
        *,
        temperature: float,
    ) -> None:
        super().__init__()
        if teacher_layout != student_layout:
            raise ValueError(
                "response KD needs identical anchor layouts and classes for teacher and student; "
                f"teacher {teacher_layout} != student {student_layout}"
            )
        self.temperature = temperature

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """The tempered response loss."""
        return response_loss(student_logits, teacher_logits, self.temperature)
