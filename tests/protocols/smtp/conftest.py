from tests.support.smtp import hosted, smtp_ports  # noqa: F401
