# SMTP fixtures for tests/security/test_smtp_*.py.
from tests.support.smtp import hosted, smtp_ports  # noqa: F401
