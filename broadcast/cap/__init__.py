"""CAP 1.2 documents: the message model and XML (`codec`), schema and rule checks (`validation`), XML-DSig
(`signing`). Knows nothing of stored alerts; `broadcast.alerts.capmap` maps between the two."""
