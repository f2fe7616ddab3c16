// JSON Schemas of the zquant web client's own response types, read from its unchanged
// services/typings.d.ts with the TypeScript parser.
//
// The file does not parse cleanly (a missing `>` near DataDifferenceItem ends the ZQuant
// namespace early; the frontend's build tolerates it), which stops JSON-schema generators; the
// parser recovers and keeps every declaration, so the type aliases are looked up by name in the
// recovered tree and converted here. Only the constructs those types use are supported; anything
// else throws, so a type is never checked loosely by accident.
//
// One deliberate reading: a property marked `?` may be absent or null. The original server
// (pydantic) sends `None` as null for exactly those fields, and the pages treat both alike
// (`if (!text) return '-'`).
import fs from 'node:fs';
import ts from 'typescript';

export function typeSchemas(typingsPath, names) {
  const source = ts.createSourceFile(typingsPath, fs.readFileSync(typingsPath, 'utf8'), ts.ScriptTarget.Latest, true);
  const aliases = new Map();
  const visit = (node) => {
    if (ts.isTypeAliasDeclaration(node) && !aliases.has(node.name.text)) aliases.set(node.name.text, node);
    ts.forEachChild(node, visit);
  };
  visit(source);
  const out = {};
  for (const name of names) {
    const alias = aliases.get(name);
    if (!alias) throw new Error(`typings.d.ts has no type ${name}`);
    // Type parameters (PageResponse<T = any>) take their default.
    const params = new Map((alias.typeParameters ?? []).map((p) => [p.name.text, p.default]));
    out[name] = convert(alias.type, aliases, name, params);
  }
  return out;
}

function convert(node, aliases, where, params = new Map()) {
  const recurse = (child, at = where) => convert(child, aliases, at, params);
  switch (node.kind) {
    case ts.SyntaxKind.StringKeyword: return { type: 'string' };
    case ts.SyntaxKind.NumberKeyword: return { type: 'number' };
    case ts.SyntaxKind.BooleanKeyword: return { type: 'boolean' };
    case ts.SyntaxKind.AnyKeyword: return {};
    case ts.SyntaxKind.ArrayType: return { type: 'array', items: recurse(node.elementType) };
    case ts.SyntaxKind.LiteralType:
      if (ts.isStringLiteral(node.literal)) return { const: node.literal.text };
      if (node.literal.kind === ts.SyntaxKind.NullKeyword) return { type: 'null' };
      break;
    case ts.SyntaxKind.UnionType: return { anyOf: node.types.map((t) => recurse(t)) };
    case ts.SyntaxKind.TypeLiteral: {
      const properties = {};
      const required = [];
      for (const member of node.members) {
        if (!ts.isPropertySignature(member)) throw new Error(`${where}: unsupported member ${member.getText()}`);
        const key = member.name.getText();
        const schema = recurse(member.type, `${where}.${key}`);
        if (member.questionToken) properties[key] = { anyOf: [schema, { type: 'null' }] };
        else { properties[key] = schema; required.push(key); }
      }
      return { type: 'object', properties, required };
    }
    case ts.SyntaxKind.TypeReference: {
      const name = node.typeName.getText();
      const args = node.typeArguments ?? [];
      if (name === 'Record' && args.length === 2) {
        return { type: 'object', additionalProperties: recurse(args[1]) };
      }
      if (name === 'Array' && args.length === 1) return { type: 'array', items: recurse(args[0]) };
      if (params.has(name)) return params.get(name) ? recurse(params.get(name)) : {};
      const target = aliases.get(name.replace(/^ZQuant\./, ''));
      if (target && args.length === 0) return convert(target.type, aliases, name);
      break;
    }
    default: break;
  }
  throw new Error(`${where}: unsupported type ${node.getText()}`);
}
