"""quack dashboard: ``streamlit run dashboard/app.py``.

Opens on the built-in sample data and the shipped checkpoint, or on what the operator
names with ``QUACK_DATA=PATH`` (or ``streamlit run dashboard/app.py -- --data PATH``): raw
Censored Planet files, a data set written by ``quack ingest`` or a folder written by
``quack encode``, whose latents are read as they are. The pages live in
``dashboard/app_pages/``, one file each. What they share lives in one module per
concern: ``settings`` (the environment), ``session`` (what a session has chosen),
``sources`` (sample, files, uploads, checkpoints), ``loaders`` (cached files),
``results`` (latents, maps, attention), ``jobs`` (the background store and its keys),
``training_runs``, ``tables``, ``charts`` and ``errors`` (what a browser is told when
something fails).
"""

import html
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    # Lets `streamlit run dashboard/app.py` work from a checkout without installing.
    sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402

from dashboard import errors, links, session, settings  # noqa: E402

# numba reads its cache folder when first imported, which may be in any page's job;
# keep its cache with the dashboard's unless the user chose another place.
os.environ.setdefault("NUMBA_CACHE_DIR", str(settings.numba_cache_dir()))


def main() -> None:
    """Draw the page the browser asked for, with the sidebar every page shares."""
    # An emoji icon: Streamlit draws it in the page, where a ":material/...:" page icon is
    # fetched from Google's font service on every load, which a machine offline cannot reach.
    st.set_page_config(page_title="quack", page_icon="🦆", layout="wide")

    pages = {
        "Explore": [
            st.Page("app_pages/latent_map.py", title="Latent map", icon=":material/scatter_plot:", default=True),
            st.Page("app_pages/attention.py", title="Attention", icon=":material/visibility:"),
            st.Page("app_pages/discover.py", title="Discover", icon=":material/search_insights:"),
            st.Page("app_pages/changes.py", title="Changes", icon=":material/timeline:"),
        ],
        "Set up": [
            st.Page("app_pages/data.py", title="Data", icon=":material/database:"),
            st.Page("app_pages/model.py", title="Model", icon=":material/neurology:"),
            st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
        ],
    }

    page = st.navigation(pages)

    st.markdown(
        """<style>
        [data-testid="stMainBlockContainer"]{padding-top:2.2rem}
        [data-testid="stMetric"]{background:#f7f8fa;border:1px solid #e6e8eb;border-radius:10px;padding:10px 14px}
        [data-testid="stSidebar"] .qk-side{font-size:13px;color:#3d4653;line-height:1.5}
        [data-testid="stSidebar"] .qk-side b{color:#1d3557}
        </style>""",
        unsafe_allow_html=True,
    )

    # A link opens its view: read once per session, before the sidebar names the source and a page draws its widgets.
    links.apply()

    with st.sidebar:
        src = session.source()
        checkpoint = session.checkpoint()
        st.markdown(
            f'<div class="qk-side"><b>Data</b><br>{html.escape(src["name"])}<br><br>'
            f'<b>Checkpoint</b><br>{html.escape(checkpoint.name)}</div>',
            unsafe_allow_html=True,
        )
        st.caption("Change them on the Data and Model pages.")
    link = links.write(page.title)

    try:
        links.show_notes()
        page.run()
    except (ValueError, OSError) as error:
        # Errors a user can cause arrive as one sentence; show it and keep the app usable.
        errors.show(error)
    except Exception as error:  # noqa: BLE001 - the page boundary: never a stack trace in the browser
        logging.getLogger("quack.dashboard").exception("page %s failed", page.title)
        errors.show(f"Something went wrong on this page ({type(error).__name__}: {error}); the other pages still work.")
    finally:
        # Compiling UMAP takes a core for several seconds; starting its worker once the page
        # is drawn keeps both cores for the first encoding, so the first map comes sooner.
        from dashboard import worker

        worker.warm()
        # Last: after a page's st.stop, Streamlit ends the run at the next message sent.
        links.write(page.title, link)


# Streamlit runs this file as __main__; a worker process an ingest starts from the server
# re-imports it as __mp_main__, and must not draw anything.
if __name__ == "__main__":
    main()
