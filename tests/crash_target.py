"""A run to be killed: 15-disk Hanoi on the simulated backend, journalled, logging every request.

Used by test_crash_resume.py: ``python tests/crash_target.py JOURNAL REQUEST_LOG``. The request
log (one unbuffered line per backend call: prompt checksum and samples asked for) lets the test
count every sample drawn, including those of steps that a kill cut short.
"""

import os
import sys
import zlib

import maker
from maker import Backend, SimulatedBackend, load_task


class LoggingBackend(Backend):
    def __init__(self, inner: Backend, log_path: str) -> None:
        self.inner, self.name, self.simulated = inner, inner.name, inner.simulated
        self.fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def observer(self):  # the simulated backend learns each prompt's state by observing the run
        return self.inner.observer()

    async def sample(self, request):
        samples = await self.inner.sample(request)
        os.write(self.fd, f"{zlib.crc32(request.prompt.encode())} {len(samples)}\n".encode())
        return samples


def main() -> None:
    journal, log = sys.argv[1], sys.argv[2]
    disks = int(os.environ.get("CRASH_DISKS", "15"))
    task = load_task("hanoi", disks=disks)
    # The seed changes per process: a resumed run must not depend on repeating the same draws.
    backend = LoggingBackend(SimulatedBackend(task, error_rate=0.05, seed=os.getpid()), log)
    # k = 5: at 5% errors a wrong move wins a step with chance ~1e-9, so across 32,767 steps a
    # committed error is out of reach (k = 3 left ~5% of runs unsolved, a flaky test).
    result = maker.run(task, backend, k=5, journal=journal)
    print("solved" if result.solved else "unsolved", result.steps, result.resumed_steps)


if __name__ == "__main__":
    main()
