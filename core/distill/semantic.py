"""Semantic loss on the student's own features: where it attends, and how images differ.

Both parts compare channel-count-free statistics of the student's pyramid map (before any
adapter) with the teacher's, so no adapter can satisfy them in the student's place:

- spatial attention transfer (Zagoruyko & Komodakis, ICLR 2017): the L2-normalised map of
  the channel mean of |F|^p;
- channel-attention similarity: the Pearson correlation, between every two images of the
  batch, of their channel attention profiles (spatial mean of |F|^p per channel), matched
  as similarity-preserving KD (Tung & Mori, ICCV 2019) matches its batch similarities.
  Which channel is which differs between two networks; how alike two images' channel use
  is does not. It needs two images or more (0 for a batch of one).
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

EPS = 1e-6


def spatial_attention(features: Tensor, p: float = 2.0) -> Tensor:
    """(N, H*W) L2-normalised map of the channel mean of |F|^p."""
    attention = features.abs().pow(p).mean(dim=1).flatten(1)  # (N, H*W)
    return F.normalize(attention, dim=1)


def channel_similarity(features: Tensor, p: float = 2.0) -> Tensor:
    """(N, N) Pearson correlations between the images' channel attention profiles."""
    attention = features.abs().pow(p).mean(dim=(2, 3))  # (N, C)
    centred = attention - attention.mean(dim=1, keepdim=True)  # (N, C)
    profiles = F.normalize(centred, dim=1, eps=EPS)  # (N, C)
    return profiles @ profiles.T  # (N, N)


def match_size(student: Tensor, teacher: Tensor) -> Tensor:
    """The student map bilinearly resized to the teacher's (H, W) when they differ."""
    if student.shape[-2:] == teacher.shape[-2:]:
        return student
    return F.interpolate(student, size=teacher.shape[-2:], mode="bilinear", align_corners=False)


def attention_loss(student: Tensor, teacher: Tensor, p: float = 2.0) -> Tensor:
    """Squared L2 distance between spatial attention maps, mean over images.

    The student's map is resized to the teacher's when sizes differ; channels need not match.
    """
    # float32: |F|^p overflows half precision under autocast.
    student = match_size(student.float(), teacher)
    teacher = teacher.detach().float()
    diff = spatial_attention(student, p) - spatial_attention(teacher, p)  # (N, H*W)
    return diff.pow(2).sum(dim=1).mean()


def channel_similarity_loss(student: Tensor, teacher: Tensor, p: float = 2.0) -> Tensor:
    """Mean squared difference of the off-diagonal image-to-image channel correlations."""
    batch = student.shape[0]
    if batch != teacher.shape[0]:
        raise ValueError(f"channel similarity: {batch} student images, {teacher.shape[0]} teacher")
    if batch < 2:
        return student.float().sum() * 0.0
    diff = channel_similarity(student.float(), p) - channel_similarity(teacher.detach().float(), p)
    return diff.pow(2).sum() / (batch * (batch - 1))  # the diagonal is 1 - 1 = 0


def semantic_loss(
    student: Tensor, teacher: Tensor, p: float = 2.0, *, channel: bool = True
) -> Tensor:
    """Spatial attention transfer plus (optionally) channel-attention similarity."""
    value = attention_loss(student, teacher, p)
    if channel:
        value = value + channel_similarity_loss(student, teacher, p)
    return value
