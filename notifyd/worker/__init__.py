"""The worker: the loop that claims and leases jobs (``loop``), the pipeline that runs one
(``pipeline``), where a notification's model comes from and its result goes
(``bimserver_binding``), and how they are put together (``assembly``)."""

from notifyd.worker.assembly import open_worker, running_worker
from notifyd.worker.loop import HOSTNAME, Worker, WorkerConfig, make_worker_id

__all__ = ["HOSTNAME", "Worker", "WorkerConfig", "make_worker_id", "open_worker", "running_worker"]
