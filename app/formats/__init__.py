"""Carrier file formats (X12 EDI 210, UPS and FedEx CSV): pure parsing, no Temporal.

One entry point, `files.parse_file`, turns a file of any known format (a path, its bytes or a
binary stream) into a stream of normalized invoice events (`invoice.InvoiceEvent`), with the
envelope issues of an X12 file alongside. Whole invoices are `invoice.collect_invoices` of it.
"""
