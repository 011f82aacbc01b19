"""torchrun for ``./train.sh``, quiet about a worker that has already reported its error.

``python -m basicsr.utils.launch`` takes torchrun's arguments. When a worker exits with status 1 or 2 it has
already printed its one-line ``error: ...`` (see :mod:`basicsr.utils.cli`), so torchrun's ``ChildFailedError``
report (about 30 lines) is left out and the launcher exits with the worker's status. A worker killed by a
signal or exiting with another status gets one line naming its rank and what happened.

Restarts (``--max_restarts``) get a fresh rendezvous store per attempt (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``
unless set): torchrun's shared store keeps the previous attempt's worker addresses, and the restarted workers'
process group then connects to a dead one (pytorch issue 135712).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import List, Optional

REPORTED = (1, 2)  # statuses of run_cli: the worker printed the error itself


def main(argv: Optional[List[str]] = None) -> int:
    """Run torchrun with ``argv``; returns the exit status (the first failed worker's)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(argv)
    os.environ.setdefault('TORCH_DISABLE_SHARE_RDZV_TCP_STORE', '1')
    # the agent logs every failed worker at ERROR level; the failure is reported once below instead
    logging.getLogger('torch.distributed.elastic.multiprocessing.api').setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = failure.exitcode
        if code in REPORTED:
            return code
        if code < 0:
            try:
                what = f'was killed by {signal.Signals(-code).name}'
            except ValueError:
                what = f'was killed by signal {-code}'
        else:
            what = f'exited with status {code}'
        print(f'error: training process rank {rank} (pid {failure.pid}) {what}; see the training log '
              f'for what it was doing', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
