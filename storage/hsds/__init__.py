"""Open Referral HSDS 3.0: the official schema, both of its forms (nested JSON and the tabular
data package), the records the directory keeps, and the `hotline` taxonomy for what HSDS has no
field for. Nothing here touches the database: storage.directory does."""

from storage.hsds.graph import Problem, Tables, flatten_records
from storage.hsds.hotline import profiles
from storage.hsds.sources import Built, Scope, Source, build, read_sources, skipped
from storage.hsds.tabular import write_package

__all__ = ["Built", "Problem", "Scope", "Source", "Tables", "build", "flatten_records",
           "profiles", "read_sources", "skipped", "write_package"]
