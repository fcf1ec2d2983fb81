"""The web dashboard, its JSON API and Prometheus metrics, over the query facade."""
