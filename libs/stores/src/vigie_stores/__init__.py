"""vigie's store adapters: MongoDB, Cassandra, Redis and the Parquet raw zone.

Each adapter lives in its own module with its own frozen config, raises only the errors of
``vigie_stores.errors``, and is opened with ``await XStore.open(config)`` (an async context
manager). MongoDB is reached through PyMongo's async API (``AsyncMongoClient``), motor's
successor; nothing outside ``vigie_stores.mongo`` knows which driver is used.

Import the adapters from their modules (``from vigie_stores.mongo import MongoStore``), so a
service pulls in only the drivers it uses; this package exports the shared vocabulary.
"""

from .errors import StoreClosed, StoreConflict, StoreError, StoreRejected, StoreUnavailable
from .protocols import HashStore, RecordSink, Store, VersionedDocuments
from .results import BatchOutcome, Outcome

__all__ = [
    "BatchOutcome",
    "HashStore",
    "Outcome",
    "RecordSink",
    "Store",
    "StoreClosed",
    "StoreConflict",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "VersionedDocuments",
]
