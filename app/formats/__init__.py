"""Carrier file formats (X12 EDI 210, UPS and FedEx CSV): pure parsing, no Temporal.

One entry point, `detect.iter_file_events`, turns a file of any known format into a stream of
normalized invoice events.
"""
