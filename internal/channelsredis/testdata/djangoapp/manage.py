#!/usr/bin/env python3
"""The Django side of herald's channels_redis tests: a project whose only
code is what the documents' signal handlers do, group_send through the
configured channels_redis layer."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
