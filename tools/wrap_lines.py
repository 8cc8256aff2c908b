"""Wrap the export cells' lines to at most 120 characters, without changing what the code does (issue 38).

`python tools/wrap_lines.py nbs/*.ipynb` rewrites, in each `#| export` cell:
0. a continuation line of a few characters (an earlier break's leftover) joined back onto the line before;
1. a comment line too long: wrapped onto several; a trailing comment that makes its line too long: moved onto comment
   lines just above the line (fastcore's docments read comment lines above a parameter as its docment; argparse's help
   joins them into one paragraph), except on a `def` line, where it is the first parameter's docment;
2. a line inside brackets: broken after a comma or an opening bracket, or before `and`/`or`/`if`/`else`/`for`, or inside
   a string literal (split into two adjacent literals, which Python joins at compile time);
3. a one-line docstring: made a triple-quoted paragraph wrapped at 120 characters;
4. a ragged run of adjacent string literals (one per line): re-wrapped evenly.
Every change is checked: the cell's syntax tree must be the same as before (docstrings compared with their whitespace
collapsed), else the change is undone and the line reported. Lines it cannot wrap are printed for a hand to fix.
"""
import ast, io, json, sys, textwrap, tokenize
from pathlib import Path

W = 120
OPEN, CLOSE = '([{', ')]}'


def _norm_tree(src):
    "ast.dump of `src` with every docstring's whitespace collapsed"
    t = ast.parse(src)
    for n in ast.walk(t):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and n.body:
            e = n.body[0]
            if isinstance(e, ast.Expr) and isinstance(e.value, ast.Constant) and isinstance(e.value.value, str):
                e.value.value = ' '.join(e.value.value.split())
    return ast.dump(t)


def _tokens(src):
    "tokens of `src` with the bracket depth before each"
    out, depth, opens = [], 0, []
    for t in tokenize.generate_tokens(io.StringIO(src).readline):
        out.append((t, depth, opens[-1] if opens else None))
        if t.type == tokenize.OP and t.string in OPEN: depth += 1; opens.append(t.start)
        elif t.type == tokenize.OP and t.string in CLOSE: depth -= 1; opens.pop()
    return out


def _move_comment(lines, toks, r):
    "move line r's (0-based) trailing comment onto comment lines above it; None when it has none"
    com = [t for t, d, _ in toks if t.type == tokenize.COMMENT and t.start[0] == r + 1 and t.start[1] > 0]
    if not com: return None
    c = com[0]; code = lines[r][:c.start[1]].rstrip()
    if not code.strip(): return None
    # a `def` line's comment is its first parameter's docment: above the `def` it would document nothing
    if code.lstrip().startswith(('def ', 'async def ', 'class ')): return None
    ind = len(code) - len(code.lstrip())
    text = c.string.lstrip('#').strip()
    wrapped = textwrap.wrap(text, W - ind - 2, break_long_words=False, break_on_hyphens=False) or ['']
    return lines[:r] + [' ' * ind + '# ' + w for w in wrapped] + [code] + lines[r + 1:]


def _split_points(body, f):
    "positions just after each space of a string literal's `body` where it may be split (outside an f-string's braces)"
    out, depth, i = [], 0, 0
    while i < len(body):
        ch = body[i]
        if f and body[i:i + 2] in ('{{', '}}'): i += 2; continue
        if f and ch == '{': depth += 1
        elif f and ch == '}': depth -= 1
        elif ch == ' ' and depth == 0 and (i == 0 or body[i - 1] != '\\'): out.append(i + 1)
        i += 1
    return out


def _split_string(t, line, limit):
    "split the string token `t` (on one line) so that its first part ends by column `limit`: (first, rest) or None"
    s = t.string; q = next(i for i, ch in enumerate(s) if ch in '\'"'); pre, quote = s[:q], s[q]
    if s[q:q + 3] in ('"""', "'''") or 'b' in pre.lower(): return None
    body = s[q + 1:-1]
    # the first part with its closing quote ends by `limit`, and the rest is not a stub
    fit = [k for k in _split_points(body, 'f' in pre.lower()) if t.start[1] + len(pre) + 1 + k + 1 <= limit
           and len(body) - k >= 12]
    if not fit or fit[-1] < 8: return None
    return pre + quote + body[:fit[-1]] + quote, pre + quote + body[fit[-1]:] + quote


def _wrap_comment(lines, r):
    "a comment line r (0-based) wrapped onto several; None when line r is not a comment line"
    line = lines[r]; ind = len(line) - len(line.lstrip())
    if not line.lstrip().startswith('#') or line.lstrip().startswith('#|'): return None
    ws = textwrap.wrap(line.lstrip().lstrip('#').strip(), W - ind - 2, break_long_words=False, break_on_hyphens=False)
    return lines[:r] + [' ' * ind + '# ' + w for w in ws] + lines[r + 1:]


def _break_line(lines, toks, r):
    "break the too-long line r (0-based) once inside brackets; None when no break fits"
    line = lines[r]; base = len(line) - len(line.lstrip())
    # (column where the first part ends, column where the rest starts, indent of the rest, a string's split, penalty)
    cands = []
    row = [(t, d, o) for t, d, o in toks if t.start[0] == r + 1 and t.end[0] == r + 1]
    for k, (t, d, o) in enumerate(row):
        # the rest aligns with its bracket when that opened on this line, else with this line (a sibling)
        ind = ((o[1] + 1 if o[1] + 1 <= 70 else base + 4) if o and o[0] == r + 1 else base) if d else None
        if d >= 1 and t.type == tokenize.STRING and len(line) > W:
            sp = _split_string(t, line, W)
            if sp:
                a, b = sp; sind = t.start[1] if t.start[1] <= 70 else ind
                cands.append((t.start[1] + len(a), None, sind, (t, a, b), 30))
        nxt = row[k + 1][0] if k + 1 < len(row) else None
        if nxt is None or nxt.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE): continue
        if t.type == tokenize.OP and t.string == ',' and d >= 1: cands.append((t.end[1], nxt.start[1], ind, None, 0))
        elif t.type == tokenize.OP and t.string in OPEN and nxt.string not in CLOSE:
            cands.append((t.end[1], nxt.start[1], base + 4, None, 40))
        if d >= 1 and nxt.type == tokenize.NAME and nxt.string in ('and', 'or', 'if', 'else', 'for'):
            cands.append((t.end[1], nxt.start[1], ind, None, 10))
    fits = [c for c in cands if c[0] <= W and c[0] > base + 10]
    if not fits: return None
    # the rightmost break, strings and keywords last, shallow brackets first, never a stub of a few characters
    depth_of = {t.end[1]: d for t, d, _ in row}
    def score(c):
        rest = len(line) - (c[1] if c[1] is not None else c[0])
        return c[0] - c[4] - 12 * max(0, depth_of.get(c[0], 1) - 1) - (60 if rest < 25 else 0)
    end, start, ind, sp, _ = max(fits, key=score)
    if sp:
        t, a, b = sp
        first, rest = line[:t.start[1]] + a, ' ' * ind + b + line[t.end[1]:]
    else:
        first, rest = line[:end].rstrip(), ' ' * ind + line[start:]
    return lines[:r] + [first, rest] + lines[r + 1:]


def _wrap_docstring(lines, src, r):
    "a one-line docstring on line r made a wrapped triple-quoted paragraph; None when line r holds none"
    for n in ast.walk(ast.parse(src)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body:
            e = n.body[0]
            if (isinstance(e, ast.Expr) and isinstance(e.value, ast.Constant) and isinstance(e.value.value, str)
                    and e.lineno == r + 1 and e.end_lineno == r + 1):
                line = lines[r]; ind = e.col_offset; s = line[ind:e.end_col_offset]
                q = next(i for i, ch in enumerate(s) if ch in '\'"'); pre = s[:q]
                if s[q:q + 3] in ('"""', "'''"): body = s[q + 3:-3]
                else: body = s[q + 1:-1]
                if '"""' in body: return None
                ws = textwrap.wrap(body, W - ind, initial_indent=' ' * ind + pre + '"""', subsequent_indent=' ' * ind,
                                   break_long_words=False, break_on_hyphens=False)
                ws[-1] += '"""'
                if len(ws[-1]) > W: ws[-1:] = [ws[-1][:-3], ' ' * ind + '"""']
                after = line[e.end_col_offset:]   # code after the docstring on its line, if any
                return lines[:r] + ws + [after] * bool(after.strip()) + lines[r + 1:]
    return None


def _pieces(body, first, rest, f):
    "split a string literal's `body` into pieces of at most `first`, then `rest` characters, at spaces (outside braces)"
    cuts = [0] + _split_points(body, f) + [len(body)]
    out, cur = [], ''
    for w in (body[a:b] for a, b in zip(cuts, cuts[1:])):
        width = first if not out else rest
        if cur and len(cur) + len(w) > width: out.append(cur); cur = w
        else: cur += w
    return out + [cur]


def _reflow(lines, toks):
    "the first ragged run of adjacent string literals (one per line) re-wrapped evenly; None when there is none"
    runs, cur = [], []
    for t, d, _ in toks:
        if t.type == tokenize.STRING and d >= 1 and t.start[0] == t.end[0]:
            if cur and t.start[0] == cur[-1].start[0] + 1 and lines[t.start[0] - 1][:t.start[1]].strip() == '' \
                    and lines[cur[-1].end[0] - 1][cur[-1].end[1]:].strip() == '':
                cur.append(t); continue
            if len(cur) > 1: runs.append(cur)
            cur = [t]
        elif t.type == tokenize.NL and cur: continue
        else:
            if len(cur) > 1: runs.append(cur)
            cur = []
    for run in runs:
        q = [next(i for i, ch in enumerate(t.string) if ch in '\'"') for t in run]
        pre, quote = run[0].string[:q[0]], run[0].string[q[0]]
        if 'b' in pre.lower() or any(t.string[:k] != pre or t.string[k] != quote or t.string[k:k + 3] in ('"""', "'''")
                                     for t, k in zip(run, q)): continue
        body = ''.join(t.string[k + 1:-1] for t, k in zip(run, q))
        r0, c0 = run[0].start; rk = run[-1].end[0]
        head, tail = lines[r0 - 1][:c0], lines[rk - 1][run[-1].end[1]:]
        ind = c0 if c0 <= 70 else len(lines[r0 - 1]) - len(lines[r0 - 1].lstrip()) + 4
        extra = len(pre) + 2
        ps = _pieces(body, W - c0 - extra, W - ind - extra, 'f' in pre.lower())
        if len(ps) >= len(run) or any(not x for x in ps): continue
        new = [head + pre + quote + ps[0] + quote] + [' ' * ind + pre + quote + x + quote for x in ps[1:]]
        new[-1] += tail
        if any(len(l) > W for l in new): continue
        return lines[:r0 - 1] + new + lines[rk:]
    return None


def _join_stubs(lines):
    "continuation lines of a few characters (a break's leftover, e.g. `fontsize=6)`) joined back onto the line before"
    toks = _tokens('\n'.join(lines)); depth_at = {}
    for t, d, _ in toks: depth_at.setdefault(t.start[0], d)
    commented = {t.start[0] for t, _, _ in toks if t.type == tokenize.COMMENT}   # rows (1-based) with a comment
    out = []
    for i, l in enumerate(lines):
        s = l.strip()   # line i is row i + 1; the line before it, row i, must end without a comment
        if (out and s and len(s) < 25 and depth_at.get(i + 1, 0) >= 1 and i not in commented and not s.startswith('#')
                and not out[-1].rstrip().endswith(('(', '[', '{')) and s[0] not in '\'"' and s[:2] not in ('f"', "f'")
                and len(out[-1].rstrip()) + 1 + len(s) > W):   # a line that was too long, broken just before its end
            out[-1] = out[-1].rstrip() + ('' if s[0] in ')]}' or out[-1].rstrip()[-1] in '=([{.' else ' ') + s
        else: out.append(l)
    return out


def wrap_source(src):
    "`src` with its long lines wrapped, and the lines it could not wrap"
    tree, lines, left = _norm_tree(src), src.split('\n'), []
    joined = _join_stubs(lines)
    try:
        if _norm_tree('\n'.join(joined)) == tree: lines = joined
    except SyntaxError: pass
    for _ in range(2000):
        longs = [i for i, l in enumerate(lines) if len(l) > W and i not in left]
        if not longs: break
        r = longs[0]; cur = '\n'.join(lines)
        toks = _tokens(cur)
        for step in (lambda: _wrap_comment(lines, r), lambda: _move_comment(lines, toks, r),
                     lambda: _break_line(lines, toks, r), lambda: _wrap_docstring(lines, cur, r)):
            try: new = step()
            except (tokenize.TokenError, SyntaxError, StopIteration, IndexError): new = None
            if new is None: continue
            try: ok = _norm_tree('\n'.join(new)) == tree
            except SyntaxError: ok = False
            if ok: lines = new; break
        else: left.append(r)
    for _ in range(500):   # then ragged runs of string literals, re-wrapped evenly (fewer lines, same text)
        cur = '\n'.join(lines)
        try: new = _reflow(lines, _tokens(cur))
        except (tokenize.TokenError, SyntaxError, StopIteration, IndexError): new = None
        if new is None: break
        try: ok = _norm_tree('\n'.join(new)) == tree
        except SyntaxError: ok = False
        if not ok: break
        lines = new
    return '\n'.join(lines), [lines[i] for i in left]


def wrap_notebook(path):
    "wrap the export cells of the notebook at `path` in place; the lines left too long"
    nb = json.loads(Path(path).read_text()); left = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] != 'code' or not src.lstrip().startswith('#| export'): continue
        new, lf = wrap_source(src); left += lf
        c['source'] = [l + '\n' for l in new.split('\n')[:-1]] + [new.split('\n')[-1]]
        c['source'] = [s for s in c['source'] if s]
    Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return left


if __name__ == '__main__':
    n = 0
    for p in sys.argv[1:]:
        for l in wrap_notebook(p): n += 1; print(f'{p}: left {len(l)}: {l.strip()[:100]}')
    print(f'{n} lines left over {W} characters')
