"""Attention: which tokens of a measurement the decoder looks at while rebuilding it."""

import numpy as np
import streamlit as st

from dashboard import charts, loaders, responses, results, session, tables
from quack.latents.attention_stats import attention_by_field, attention_received
from quack.schema import label_names

st.title("Attention")
st.caption(
    "The decoder rebuilds a measurement token by token; at every step it attends to the "
    "encoder's states of the input tokens. Strong attention marks the parts the model relies on."
)

s = loaders.current()
frame = loaders.rows(s.data_dir)
labels = loaders.labels(s.data_dir)
names = label_names(labels)
tokenizer = s.model.tokenizer
n = len(frame)

controls = st.columns([1, 1.4, 3])
default = session.record() or 0
record = int(controls[0].number_input("Record id", 0, n - 1, min(default, n - 1), key="attention_record"))
session.set_record(record)
mode = controls[1].segmented_control("Decoding", ["Teacher-forced", "Greedy"], default="Teacher-forced", key="attention_mode")
teacher_forcing = mode != "Greedy"
row = frame.iloc[record]
md = charts.markdown_text
controls[2].markdown(
    f"**{md(row['domain'])}** · vantage point {md(row['vp'])} · {md(row['country'] or '—')} · "
    f"{md(row['service'])} · status {md(row['status'] or '—')} · label **{names[record]}**"
)

result = results.inspect(s, [record], teacher_forcing)[0]
pieces = tokenizer.decode_tokens(result["input"].tolist())
rebuilt = tokenizer.decode_tokens(result["output"].tolist())
fields = tokenizer.token_fields(result["input"].tolist())
right = float((result["output"] == result["input"]).mean())

cards = st.columns(4)
cards[0].metric("Tokens", len(pieces))
cards[1].metric("Reconstruction loss", f"{result['loss']:.3f}")
cards[2].metric("Tokens rebuilt exactly", f"{right:.0%}")
cards[3].metric("Most attended field", max(attention_by_field(result["attention"], fields).items(), key=lambda kv: kv[1])[0])

heat, text, rebuild, compare, per_field = st.tabs(
    ["Heatmap", "Attention over the text", "Reconstruction", "Two records side by side", "Per field, for a selection"]
)

with heat:
    st.plotly_chart(
        charts.attention_heatmap(result["attention"], pieces, rebuilt, f"Record {record}: decoder step × input token"),
        config=charts.PLOT_CONFIG,
        key="attention_heatmap",
    )

with text:
    st.caption(
        "Each input token shaded by the attention it receives, averaged over the decoder steps, "
        "from this record's least to its most attended token."
    )
    weights = attention_received(result["attention"])
    st.html(charts.attention_text_html(pieces, weights, fields))
    with st.expander("Raw response"):
        st.code(responses.texts(s.data_dir, [record])[0] or "(empty)", language=None, wrap_lines=True)

with rebuild:
    a, b = st.columns(2)
    a.markdown("**Original**")
    a.html(charts.reconstruction_html(pieces, pieces, np.ones(len(pieces))))
    b.markdown(f"**Reconstruction** ({mode.lower()})")
    b.html(charts.reconstruction_html(pieces, rebuilt, result["probs"]))

with compare:
    neighbours, _, _ = results.nearest(s, record)
    other_default = session.second_record()
    if other_default is None:
        other_default = int(neighbours[0]) if len(neighbours) else 0
    other = int(st.number_input("Second record id", 0, n - 1, min(other_default, n - 1), key="attention_second"))
    session.set_second_record(other)
    second = results.inspect(s, [other], teacher_forcing)[0]
    second_pieces = tokenizer.decode_tokens(second["input"].tolist())
    second_fields = tokenizer.token_fields(second["input"].tolist())
    a, b = st.columns(2)
    for column, rid, res, toks, flds in ((a, record, result, pieces, fields), (b, other, second, second_pieces, second_fields)):
        column.markdown(f"**Record {rid}** · {md(frame.iloc[rid]['domain'])} · {names[rid]}")
        column.html(charts.attention_text_html(toks, attention_received(res["attention"]), flds))
        column.plotly_chart(
            charts.attention_heatmap(res["attention"], toks, tokenizer.decode_tokens(res["output"].tolist()), f"Record {rid}"),
            config=charts.PLOT_CONFIG,
            key=f"compare_heatmap_{rid}_{column is a}",
        )

with per_field:
    selection = session.selection()
    limit = st.slider("Most records to use", 20, 500, 200, 20, key="field_limit")
    if not len(selection):
        st.warning("No records are selected on the Latent map page; select some there, or use a random sample below.")
        if st.toggle("Use a random sample of every label instead", key="field_random"):
            selection = np.arange(n)
    if len(selection):
        ids = tables.balanced_subset(selection, labels, limit)
        groups = results.field_attention(s, ids, teacher_forcing)
        st.caption(f"Attention per field over {len(ids):,} records, censored against uncensored (and undetermined).")
        st.plotly_chart(
            charts.field_bars(groups, "Share of attention per field"), config=charts.PLOT_CONFIG, key="field_bars"
        )
