/**
 * Log lines are text from processors: shown, never interpreted. Control characters (C0 but tab and
 * newline, DEL, C1) and the bidirectional overrides that could reorder what the reader sees are
 * shown as `\u001b`-style escapes; a terminal colour code is therefore visible as text, not colour.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export function escapeControl(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** A line's fields as one line of JSON (escaped like the message), or '' when it has none. */
export function fieldsText(fields: Record<string, unknown> | null | undefined): string {
  if (!fields || Object.keys(fields).length === 0) return ''
  return escapeControl(JSON.stringify(fields))
}

/** A line as plain text for the clipboard: `time LEVEL message {fields}`. */
export function lineText(line: { at: string; level: string; message: string; fields: Record<string, unknown> | null }): string {
  const fields = fieldsText(line.fields)
  return `${line.at} ${line.level.toUpperCase()} ${escapeControl(line.message)}${fields ? ` ${fields}` : ''}`
}
