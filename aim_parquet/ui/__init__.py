"""The web UI (`aim-parquet up`): an ASGI app over the query engine and the run readers.

An optional extra (`pip install aim_parquet[ui]`: Starlette and uvicorn); nothing outside this
package imports it, and importing `aim_parquet.ui` itself imports neither. Layout:

- `server.py`: the app (`create_app`), its routes and pages, and `serve` (uvicorn, SIGTERM-clean);
- `security.py`: the token, host and same-origin checks and the Content-Security-Policy;
- `api/`: the `/api/...` endpoints (`runs.py`, `metrics.py`), the shared repository state
  (`state.py`), JSON output (`jsonout.py`), the binary series encoding (`binary.py`) and the
  per-pixel-column downsampling (`downsample.py`);
- `notebook.py`: the `%aim_parquet up` Jupyter magic;
- `static/`: the pages (plain ES modules, no build step) and `vendor/uplot/` with its licence.
"""
