"""Parcel ingestion: carrier EDI 210 and CSV invoices, normalized for rate audit.

The parsing layer (x12, edi210, csv_parse, detect) turns a carrier file into a stream of
normalized invoices; the workflows built on top of it split a file into packed runs of small
invoices and a child per large one.
Only the domain's declaration lives here, so that loading the package (for example inside the
workflow sandbox) does no work.
"""

from app.platform.domain import Domain

DOMAIN = Domain(name="parcel", team="parcel", task_queue="parcel")
