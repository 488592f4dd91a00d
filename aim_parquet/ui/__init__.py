"""The web UI (`aim-parquet up`): an ASGI app over the query engine and the run readers.

An optional extra (`pip install aim_parquet[ui]`: Starlette and uvicorn); nothing outside this
package imports it, and importing `aim_parquet.ui` itself imports neither. Layout:

- `server.py`: the app (`create_app`), its routes and pages, and `serve` (uvicorn, SIGTERM-clean);
- `security.py`: the token, host and same-origin checks and the Content-Security-Policy;
- `api/`: the `/api/...` endpoints (`runs.py`, `metrics.py`; `objects.py`: images, audio,
  figures and texts listings; `media.py`: one object per request, thumbnails, caching headers,
  in a thread pool of its own;
  `distributions.py`: heat maps; `run_page.py`: logs, log records, damaged runs), the shared
  repository state and its thread pool (`state.py`), JSON output (`jsonout.py`), the binary
  series encoding (`binary.py`) and the per-pixel-column downsampling (`downsample.py`);
- `report.py`: `aim-parquet report`, one self-contained HTML file; `plotly_asset.py`: plotly.js
  from the installed plotly package for the figures page;
- `notebook.py`: the `%aim_parquet up` Jupyter magic;
- `static/`: the pages (plain ES modules, no build step: `js/pages/` one per page, `js/views/`
  the explorers the run page embeds too, `js/report/` the report's code) and `vendor/uplot/`
  with its licence.
"""
