"""The project's one error family: every message names the thing and how to fix it."""


class NewsletterError(Exception):
    """Base of every error a user can cause; its message is one line for the terminal."""


class ConfigError(NewsletterError):
    """The configuration file is missing, malformed or inconsistent."""


class SourceError(NewsletterError):
    """An article source could not be read (skipped with a warning unless it is the only one)."""


class TemplateError(NewsletterError):
    """A template is missing, has a syntax error, or produced invalid MJML."""


class StoreError(NewsletterError):
    """The store refused an operation: a missing list, a duplicate slug, a bad address."""


class NotFound(StoreError):
    """A list, subscriber or issue that the command names does not exist."""


class AddressError(NewsletterError):
    """An email address is invalid or unsafe in a header."""


class ImportFileError(NewsletterError):
    """A subscriber CSV cannot be imported as a whole (unreadable, empty, no email column)."""


class SecretError(NewsletterError):
    """A secret named in the config is not set in the environment."""


class DeliveryError(NewsletterError):
    """Sending cannot go on: the server is unreachable, refuses us, or the issue is paused."""


class UsageError(NewsletterError):
    """A command-line option's value is malformed (a --status-map entry, a port)."""
