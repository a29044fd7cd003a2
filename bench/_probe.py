"""``python -m bench._probe --cases 1,2,3 [--warmup 4,5] [--profile FILE]``: runs the population a
Celery task runs (mdt.population.populate_cases, what populate_meeting does) in a process of its
own, with the environment it is given, and prints {"wall_s", "cpu_s", "snapshots"} as JSON. For
diagnosis when the product path misses its target: the same code and the same process boundary as
the worker, without Celery, optionally under cProfile in every thread (the asking runs on a helper
thread), the stats written to FILE."""

import argparse
import cProfile
import json
import pstats
import sys
import threading
import time
from collections import Counter


def _ids(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._probe", description=__doc__)
    parser.add_argument("--cases", type=_ids, required=True)
    parser.add_argument("--warmup", type=_ids, default=[])
    parser.add_argument("--profile")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.utils import timezone

    from mdt.models import Case
    from mdt.population import populate_cases
    from records.models import Snapshot, SourceResult

    if args.warmup:  # as in a worker that has run a task before
        populate_cases(args.warmup, reason="Benchmark probe: warm-up")

    profiles: list[cProfile.Profile] = []
    if args.profile:

        def profile_new_thread(frame, event, arg):
            sys.setprofile(None)
            profile = cProfile.Profile()
            profiles.append(profile)
            profile.enable()

        threading.setprofile(profile_new_thread)
        main_profile = cProfile.Profile()
        profiles.append(main_profile)
        main_profile.enable()
    since = timezone.now()
    cpu_started, started = time.process_time(), time.monotonic()
    made = populate_cases(args.cases, reason="Benchmark probe")
    wall_s, cpu_s = time.monotonic() - started, time.process_time() - cpu_started
    if args.profile:
        threading.setprofile(None)
        main_profile.disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(args.profile)
    patients = Case.objects.filter(pk__in=args.cases).values_list("patient_id", flat=True)
    snapshots = list(
        Snapshot.objects.filter(patient_id__in=list(patients), created_at__gte=since)
        .order_by("created_at")
        .values_list("pk", "created_at", "elapsed_ms")
    )
    frozen = [(created - since).total_seconds() for _, created, _ in snapshots]
    asking = sorted(elapsed for _, _, elapsed in snapshots)
    statuses = Counter(
        SourceResult.objects.filter(snapshot_id__in=[pk for pk, _, _ in snapshots]).values_list(
            "status", flat=True
        )
    )
    print(
        json.dumps(
            {
                "wall_s": wall_s,
                "cpu_s": cpu_s,
                "snapshots": made,
                "first_frozen_s": frozen[0] if frozen else None,
                "last_frozen_s": frozen[-1] if frozen else None,
                "asking_ms_min": asking[0] if asking else None,
                "asking_ms_max": asking[-1] if asking else None,
                "statuses": dict(statuses),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
