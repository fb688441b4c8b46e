"""A character-level language model on a short Japanese and English text, trained in seconds.

What it teaches: the task + trainer route. `nplstm.tasks.make_task("charlm", path=...)` turns any
UTF-8 text into windows of character ids (x (B, T), which the model's Embedding turns into vectors,
y (B, T) the next character; the V distinct characters: Japanese ones are single characters, not
bytes) and holds out the last 10% of the text;
`nplstm.training.trainer.train` runs the loop and evaluates on the held-out part. A language model is worth
something only if it beats counting, so the held-out loss (nats per character) is printed beside
the entropies of two counting models of the same training text: unigram (character frequencies)
and bigram (which character follows which). Then `sample_text` lets the model write.

The text is a few paragraphs about LSTMs, sentence by sentence in English and in Japanese, so both
scripts appear in the training and the held-out parts. It is tiny (about 1,500 characters), so the
model memorises as much as it generalises: the point is the mechanics, not the prose.

Run:  python examples/char_model.py     (deterministic; about 3 s on a 2-core machine)
"""
import tempfile
from pathlib import Path

from nplstm.tasks import make_task
from nplstm.tasks.charlm import sample_text
from nplstm.training.trainer import TrainConfig, build_model, train

TEXT = """\
An LSTM reads a sequence one step at a time.
LSTMは系列を一歩ずつ読みます。
At every step it decides what to forget, what to write and what to show.
各ステップで、何を忘れ、何を書き込み、何を見せるかを決めます。
The forget gate decides what the cell keeps.
忘却ゲートは、セルに何を残すかを決めます。
The input gate decides what the cell writes.
入力ゲートは、セルに何を書き込むかを決めます。
The output gate decides what the cell shows to the next layer.
出力ゲートは、セルの何を次の層に見せるかを決めます。
The cell state is a long road through time.
セルの状態は、時間を貫く長い道です。
The gradient travels back along that road without fading.
勾配はその道を、弱まらずに逆向きに伝わります。
That is why an LSTM can remember a number for a hundred steps.
だからLSTMは、百ステップ前の数を覚えていられます。
A plain RNN forgets it after ten steps.
普通のRNNは、十ステップで忘れてしまいます。
The gates are small networks, and they learn like every other weight.
ゲートは小さなネットワークで、ほかの重みと同じように学習します。
Training an LSTM means running it forward, then backward through time.
LSTMの学習とは、順方向に走らせ、時間をさかのぼって逆伝播することです。
The weights are shared by every step, so their gradient is a sum over time.
重みはすべてのステップで共有されるので、勾配は時間についての和になります。
Clip the gradient, and the training stays finite.
勾配をクリップすれば、学習は有限のままです。
A character model reads one character and guesses the next one.
文字モデルは一文字を読み、次の一文字を当てます。
It does not know words; it learns them from the text.
単語は知りません。テキストから単語を学びます。
The forget gate decides what the cell keeps, and the input gate what it writes.
忘却ゲートはセルに何を残すか、入力ゲートは何を書き込むかを決めます。
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lstm.txt"
        path.write_text(TEXT, encoding="utf-8")
        task = make_task("charlm", path=str(path), T=25)   # the text is read here; the file can go
    held = len(task.heldout_ids)
    print(f"text: {len(TEXT)} characters, {task.input_size} distinct; "
          f"{len(task.train_ids)} for training, the last {held} held out")
    print(f"counting models on the held-out text: unigram {task.unigram_entropy():.3f}, "
          f"bigram {task.bigram_entropy():.3f} nats/char")

    model = build_model(task, hidden_size=96, seed=0)     # LSTM(V, 96) + Linear(96, V), many-to-many
    cfg = TrainConfig(steps=300, batch_size=32, lr=1e-2, eval_every=50, early_stop=False,
                      log_every=0, progress=False, seed=0)
    history = train(model, task, cfg)
    for r in history.records:
        print(f"step {r['step']:4d}  train loss {r['train_loss']:.3f}  held-out loss {r['test']['loss']:.3f}  "
              f"accuracy {r['test']['accuracy']:.2f}")
    final = history.records[-1]["test"]["loss"]
    verdict = "below" if final < task.bigram_entropy() else "not below"
    print(f"held-out loss {final:.3f} nats/char: {verdict} the bigram entropy {task.bigram_entropy():.3f} "
          f"(unigram {task.unigram_entropy():.3f})")
    for prime in ("The ", "ゲート"):
        print(f"sample after {prime!r} (temperature 0.5):")
        print("  " + sample_text(model, task.vocab, prime=prime, length=80, temperature=0.5, seed=0)
              .replace("\n", "\n  "))


if __name__ == "__main__":
    main()
