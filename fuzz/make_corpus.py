"""Writes the seed corpus (fuzz/corpus/) from the hostile e2e suite's lines
plus a few backend JSON documents. Re-run after changing the suite:
    python3 fuzz/make_corpus.py
Each file is named by the SHA-1 of its content, as libFuzzer names its own."""
import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "Tests" / "e2e"))
import test_hostile_input as test_hostile  # noqa: E402  (only its case lists are used)

seeds = []
for line, _status, _argv in test_hostile.ALICE_CASES + test_hostile.CAROL:
    data = line if isinstance(line, bytes) else line.encode()
    if len(data) <= 512:
        seeds.append(data.replace(b"Get-MailboxReport", b"Get-Thing").replace(b"Get-Mailbox", b"Get-Thing"))
seeds += [
    b"Get-Thing alice -Names a,b,c -Limit 5 -Quota 1GB -Window 2h -Since 2026-01-31T08:00:00Z -Mode strict -Force",
    b"Set-Thing abc -Limit 10",
    b"gth alice -Lim 3 | Select-Object -Property a",
    b"gth | Where-Object a -CGE 10MB | Select-Object -ExpandProperty a -Skip 2 -First 1 | Sort-Object -Unique",
    b"gth | Where-Object a -NotIn x,y | Group-Object a | Format-Table -Wrap -AutoSize",
    b"gth | Where-Object a -CContains x | ConvertTo-Csv",
    b"SHOW-TH1NG -Identity:bob",
    b"Get-Th\t",
    b"invoice\xe2\x80\xaetxt",
    b'[{"a": "x1", "b": 2, "n": 3.5}, {"a": "\\u001b[2J", "b": null, "n": -1e3}]',
    b'{"a": {"nested": [1, 2, {"deep": true}]}, "b": "\\ud83d\\ude00"}',
    b'[1, "two", false, null, [], {}]',
    b'[{"a": "' + b"a" * 200 + b'x"}]',
]
out = HERE / "corpus"
out.mkdir(exist_ok=True)
for data in seeds:
    (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
print(f"{len(set(seeds))} seed files in {out}")
