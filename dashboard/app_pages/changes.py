"""Changes: censorship over the scans of a data set, two periods compared, and new templates from the latents."""

import numpy as np
import streamlit as st

from dashboard import change_views, jobs, links, loaders, results, responses, session
from quack.discovery.changes import LEVELS, TIME_UNKNOWN, chance_threshold, time_known

st.title("Changes")
st.caption(
    "How the share of censored and undetermined measurements moves from scan to scan, what changed between two "
    "periods, and new templates: censored or undetermined records of the later period whose latent "
    "neighbourhood holds no record of the earlier one. A measurement's retries count once."
)

s = loaders.current()
labels = loaders.labels(s.data_dir)
frame = change_views.records(loaders.rows(s.data_dir), labels)
if not time_known(frame):
    st.info(TIME_UNKNOWN)
    st.stop()
version = jobs.data_version(s.data_dir)[1]
scans = change_views.scans(version, frame, labels)
names = scans["scan"].astype(str).tolist()

# ---------------------------------------------------------------------------- over time
st.subheader("Over time")
controls = st.columns([1, 3])
by = controls[0].selectbox("Group by", LEVELS, key="changes_by",
                           format_func=lambda level: {"vp": "vantage point", "fingerprint": "fingerprint family"}.get(
                               level, level))
shares = change_views.shares(version, frame, labels, by)
choices = sorted(shares[by].unique().tolist())
links.settle(f"changes_groups_{by}", choices, "groups")
groups = controls[1].multiselect(f"Which {by} values", choices, default=change_views.default_groups(shares, by),
                                 key=f"changes_groups_{by}", max_selections=8)
if len(names) < 2:
    st.info("This data set holds one scan; open a data set of several scans to see censorship change.")
if groups:
    st.plotly_chart(change_views.over_time_figure(shares, by, groups), width="stretch", key="changes_chart")
    with st.expander("The counts behind each point"):
        st.dataframe(shares[shares[by].isin(groups)], hide_index=True, width="stretch")
else:
    st.caption("Choose groups to draw.")
if len(names) < 2:
    st.stop()

# ---------------------------------------------------------------------------- two periods
st.subheader("Between two periods")
pick = st.columns(2)
links.settle("changes_before", names, "earlier period")
links.settle("changes_after", names, "later period")
first = pick[0].select_slider("Before: from scan to scan", names, value=(names[0], names[-2]), key="changes_before")
second = pick[1].select_slider("After: from scan to scan", names, value=(names[-1], names[-1]), key="changes_after")
position = {name: i for i, name in enumerate(names)}
before_scans = names[position[first[0]]: position[first[1]] + 1]
after_scans = names[position[second[0]]: position[second[1]] + 1]
before = frame["scan"].isin(before_scans).to_numpy()
after = frame["scan"].isin(after_scans).to_numpy()
if set(before_scans) & set(after_scans):
    st.warning("The two periods share scans; choose periods apart to see what changed between them.")
changes, families = change_views.compared(version, frame, labels, before, after)
threshold = st.number_input("Show changes scored at least", 0.0, 50.0, chance_threshold(len(changes)), 0.5,
                            key="changes_threshold",
                            help="The score is a two-proportion z statistic. The default is the score that chance "
                                 "alone passes in fewer than 1 comparison in 20 of this many shares; it grows with "
                                 "them.")
shown = changes[changes["score"].abs() >= threshold]
st.caption(f"{len(shown):,} of {len(changes):,} country, domain, vantage point and fingerprint shares changed this "
           "much; the largest change first.")
st.dataframe(change_views.table_for_people(shown), hide_index=True, width="stretch", key="changes_table")
if len(families):
    st.markdown("**Fingerprint families that appeared or vanished**")
    st.dataframe(families, hide_index=True, width="stretch")

# ---------------------------------------------------------------------------- new templates
st.subheader("New templates")
if not st.toggle("Look for new templates in the latents", key="changes_templates"):
    st.caption("Reads (or computes) the latents of every record, then searches the later period's censored and "
               "undetermined records against the earlier period's.")
    st.stop()
k = int(st.number_input("Neighbours that must be of the later period", 2, 200, 40, key="changes_k",
                        help="A record is new when this many records of the later period lie nearer to it than any "
                             "record of the earlier one; a template needs more records than this to be found."))
latents = results.encoded(s).latents
templates, template_of = change_views.new_templates(s, frame, labels, before, after, latents, k)
if templates.empty:
    st.info("No new templates: every censored or undetermined record of the later period has records of the earlier "
            "one among its neighbours.")
    st.stop()
snippets = responses.texts(s.data_dir, templates["example"].to_numpy())
templates = templates.assign(snippet=[" ".join(str(t).split())[:160] for t in snippets])
st.dataframe(templates.drop(columns=["template"]), hide_index=True, width="stretch",
             key="changes_templates_table")
chosen = st.selectbox("Template", templates.index, key="changes_template",
                      format_func=lambda i: f"{i + 1}: {templates.loc[i, 'records']} records, "
                                            f"{templates.loc[i, 'countries']}")
go = st.columns(2)
if go[0].button("Open its first record on the Attention page", key="changes_open"):
    session.set_record(int(templates.loc[chosen, "example"]))
    st.switch_page("app_pages/attention.py")
if go[1].button("Propose a fingerprint for its records", key="changes_propose",
                help="Selects the template's records and opens Discover › Clusters and fingerprints, which "
                     "proposes patterns from them."):
    session.set_selection(np.flatnonzero(template_of == templates.loc[chosen, "template"]))
    st.session_state["proposal_origin"] = "selection"
    st.session_state["discover_tab"] = "Clusters and fingerprints"
    st.switch_page("app_pages/discover.py")
