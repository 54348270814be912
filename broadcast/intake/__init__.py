"""Alerts from outside: CAP documents and feeds, BMKG nowcasts and earthquakes; each becomes a draft for a human
to approve through the one path `broadcast.alerts.service.create_imported`."""
