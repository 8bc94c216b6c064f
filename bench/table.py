"""Result tables: one per scenario, printed as Markdown (readable in a terminal, pasted into
docs/performance.md as is) and available as JSON.

Rules: a cell that was not measured is "-", never 0; notes say what the figures mean.
"""


class Table:
    def __init__(self, name, title, columns, notes=()):
        self.name = name
        self.title = title
        self.columns = list(columns)   # [(key, heading)]
        self.rows = []
        self.notes = list(notes)

    def add(self, **row):
        self.rows.append(row)
        return row

    @staticmethod
    def _cell(value):
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}"
        return str(value)

    def render(self):
        heads = [h for _, h in self.columns]
        body = [[self._cell(r.get(k)) for k, _ in self.columns] for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(heads, *body)]
        line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
        out = [f"### {self.title}", "", line(heads),
               "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"]
        out += [line(cells) for cells in body]
        if self.notes:
            out.append("")
            out += [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def note_errors(self, label, result):
        """A note with the load generator's error counts (why players failed), if any."""
        errors = result.get("errors") or ({"harness": result["error"]} if "error" in result else {})
        if errors:
            self.notes.append(f"{label}: " + "; ".join(f"{k} x{v}" for k, v in errors.items()))

    def as_json(self):
        return {"name": self.name, "title": self.title, "rows": self.rows, "notes": self.notes}
