import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { EditorState, StateEffect, StateField, type Extension } from "@codemirror/state";
import { Decoration, type DecorationSet, EditorView, highlightActiveLine, keymap, lineNumbers } from "@codemirror/view";
import { useEffect, useRef } from "preact/hooks";

/** Marks one line as the error line (0 clears). */
const setErrorLine = StateEffect.define<number>();
const errorLineField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    let next = deco.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setErrorLine)) continue;
      const n = e.value;
      if (n < 1 || n > tr.state.doc.lines) {
        next = Decoration.none;
      } else {
        const line = tr.state.doc.line(n);
        next = Decoration.set([Decoration.line({ class: "cm-error-line", attributes: { "data-error-line": String(n) } }).range(line.from)]);
      }
    }
    return next;
  },
  provide: (f) => EditorView.decorations.from(f),
});

interface Props {
  value: string;
  onChange?: (code: string) => void;
  readOnly?: boolean;
  /** 1-based line to highlight as failing; 0 for none. */
  errorLine?: number;
  label: string;
}

/** CodeMirror 6 with Python; Tab indents, Escape then Tab leaves the editor (keyboard users). */
export function CodeEditor({ value, onChange, readOnly = false, errorLine = 0, label }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;

  useEffect(() => {
    if (!host.current) return undefined;
    const extensions: Extension[] = [
      lineNumbers(), history(), indentOnInput(), bracketMatching(), highlightActiveLine(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }), python(), errorLineField,
      keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
      EditorView.contentAttributes.of({ "aria-label": label }),
      EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) changed.current?.(u.state.doc.toString());
      }),
    ];
    view.current = new EditorView({ parent: host.current, state: EditorState.create({ doc: value, extensions }) });
    return () => view.current?.destroy();
  }, [readOnly]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ effects: setErrorLine.of(errorLine) });
    if (errorLine >= 1 && errorLine <= v.state.doc.lines) {
      v.dispatch({ effects: EditorView.scrollIntoView(v.state.doc.line(errorLine).from, { y: "center" }) });
    }
  }, [errorLine, value]);

  return <div ref={host} class="code-editor" data-testid="code-editor" data-error-line={errorLine || undefined} />;
}
