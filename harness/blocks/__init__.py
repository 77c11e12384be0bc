"""Shared building blocks that several method plugins import (one place, no copies)."""
