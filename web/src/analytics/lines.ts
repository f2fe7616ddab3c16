/** The strategy line a message points at ("line 7: SyntaxError …", "… strategy line 12, in
 *  on_bar"), or 0. Used to highlight it in the editor. */
export function lineOf(message: string): number {
  const m = /\bline (\d+)\b/.exec(message);
  return m ? Number(m[1]) : 0;
}
