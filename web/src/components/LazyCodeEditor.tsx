import type { ComponentProps } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { CodeEditor } from "./CodeEditor";

type Props = ComponentProps<typeof CodeEditor>;

/** The code editor, loaded on first use (CodeMirror is the second largest chunk): pages that only
 *  sometimes show code do not make every visit wait for it. Plain text shows meanwhile. */
export function LazyCodeEditor(props: Props) {
  const [Editor, setEditor] = useState<typeof CodeEditor | null>(null);
  useEffect(() => {
    let live = true;
    void import("./CodeEditor").then((m) => live && setEditor(() => m.CodeEditor));
    return () => { live = false; };
  }, []);
  return Editor ? <Editor {...props} /> : <pre class="code-placeholder">{props.value}</pre>;
}
