"""The HTTP side of the API: settings validated into a query, authentication, a session with
retries, the rate governor, cursor pagination, and parsing each page."""
