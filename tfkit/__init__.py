"""tfkit: validate, link, pseudonymise and package Troubled Families returns for ONS."""

__version__ = "0.1.0"
