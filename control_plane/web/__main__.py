"""``python -m control_plane.web update|compile|check``: maintain the console's catalogs."""

from __future__ import annotations

import sys

from .i18n import main

sys.exit(main())
