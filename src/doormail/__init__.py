"""doormail: e-mail notifications for door stations and IP intercoms."""

__version__ = "0.1.0"
