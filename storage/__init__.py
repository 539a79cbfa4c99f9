"""VividFlow's ground floor: the SQL records (conversations, messages, images, generations) and
the content-addressed media folder. Imports nothing else of VividFlow and no ML library.

    from storage import open_store
    store = open_store()                       # $VIVIDFLOW_HOME or ./vividflow-data
    conv = store.create_conversation("beach")
    gen = store.create_generation(conv.id, plan_dict, image.id, "preview", "preview-v1")
"""

from storage.errors import (
    DatabaseBusyError,
    DatabaseCorruptError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidFieldError,
    InvalidTransitionError,
    NotFoundError,
    QuotaExceededError,
    ReadOnlyStorageError,
    SchemaMismatchError,
    SchemaTooNewError,
    StorageError,
    StorageFullError,
)
from storage.media import MediaFile, MediaStore, PendingWrite
from storage.migrations import LATEST_VERSION, MIGRATIONS, Migration, migrate, schema_version
from storage.leases import MAX_LEASE_RETRIES
from storage.models import ACTIVE_STATUSES, LOCAL_USER, ROLES, SHARED_QUEUE, STATUSES, TERMINAL_STATUSES
from storage.records import (
    ConversationRecord,
    GalleryPage,
    GenerationRecord,
    ImageRecord,
    Lineage,
    MessageRecord,
    Progress,
    StoreInfo,
)
from storage.queue import TRANSITIONS
from storage.recovery import DEFAULT_INTERRUPTED_MESSAGE, Recovered
from storage.store import DB_URL_ENV, HOME_ENV, Store, open_store, resolve_location
from vividflow.sections import DEFAULT_HOME
from storage.users import UserQueue
from storage.validation import PLAN_COLUMNS

__all__ = [
    "ACTIVE_STATUSES",
    "DB_URL_ENV",
    "DEFAULT_HOME",
    "DEFAULT_INTERRUPTED_MESSAGE",
    "HOME_ENV",
    "LATEST_VERSION",
    "LOCAL_USER",
    "MAX_LEASE_RETRIES",
    "MIGRATIONS",
    "PLAN_COLUMNS",
    "ROLES",
    "SHARED_QUEUE",
    "STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "ConversationRecord",
    "DatabaseBusyError",
    "DatabaseCorruptError",
    "DatabaseUnavailableError",
    "ForbiddenError",
    "GalleryPage",
    "GenerationRecord",
    "ImageRecord",
    "InvalidFieldError",
    "InvalidTransitionError",
    "Lineage",
    "MediaFile",
    "MediaStore",
    "MessageRecord",
    "Migration",
    "NotFoundError",
    "PendingWrite",
    "Progress",
    "QuotaExceededError",
    "ReadOnlyStorageError",
    "Recovered",
    "SchemaMismatchError",
    "SchemaTooNewError",
    "StorageError",
    "StorageFullError",
    "Store",
    "StoreInfo",
    "UserQueue",
    "migrate",
    "open_store",
    "resolve_location",
    "schema_version",
]
