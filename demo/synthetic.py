"""Synthetic NHS numbers from the 999 test range, for the demo region, tests and benchmarks."""

import nhs_number


def synthetic_nhs_number(n: int) -> str:
    """The n-th NHS number of the 999 test range. Each n owns the stems 2n and 2n+1; at most one
    of two neighbouring stems has no valid check digit (their weighted sums differ by 2)."""
    for stem in (999_000_000 + 2 * n, 999_000_000 + 2 * n + 1):
        candidate = f"{stem}{nhs_number.calculate_checksum(str(stem))}"
        if len(candidate) == 10 and nhs_number.is_valid(candidate):
            return candidate
    raise AssertionError(f"no valid NHS number for {n}")
