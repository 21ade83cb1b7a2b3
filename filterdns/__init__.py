"""filterdns: a content-filtering DNS resolver for school networks."""

__version__ = "0.1.0"
