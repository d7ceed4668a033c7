"""The zoo's video architectures and the shortest clip each accepts (shared by zoo-wide tests)."""

from __future__ import annotations

from nlconvert.arch.zoo import arch_names, get_arch

VIDEO = [n for n in arch_names() if not get_arch(n).is_2d]


def small_frames(name: str) -> int:
    """The shortest clip that every layer of `name` accepts (grouping included)."""
    arch = get_arch(name)
    per_group = arch.nonlocal_block.group_size if arch.nonlocal_block.grouped_stages else 1
    return max(2, per_group) * arch.temporal_reduction
