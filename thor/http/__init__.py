"""Thor's HTTP/1.1 support: the sans-IO protocol core lives in :mod:`thor.http.protocol`."""
