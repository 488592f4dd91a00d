"""`python -m aim_parquet ...`: the `aim-parquet` command."""

import sys

from aim_parquet.cli.main import main

sys.exit(main())
