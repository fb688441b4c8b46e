"""An independent LSTM written with torch ops, one sequence and one step at a time.

It shares no code with nplstm: the equations are typed again from docs/math.md, ragged
batches are handled by running each sequence over its own length, and autograd gives
the gradients. Keys and shapes of `params` follow nplstm's contract.
"""


def lstm(torch, params, x, h0, c0, lengths, *, num_layers, bidirectional, peephole, forget_gate,
         input_gate=True, output_gate=True, input_activation="tanh", output_activation="tanh", coupled=False,
         gate_recurrence=False):
    """x: (B, T, I) tensor; h0, c0: (L·D, B, H); lengths: list of B ints; the flags: Greff's variants
    (input_gate=False: i = 1; output_gate=False: o = 1; "identity" activations; coupled: f = 1 - i;
    gate_recurrence: [i, f, o] of the previous step times params["R_gates"] joins [a_i, a_f, a_o]).

    Returns y (B, T, D·H) with zeros at padded steps, h_n, c_n (L·D, B, H).
    """
    act = {"tanh": torch.tanh, "identity": lambda a: a}
    B, T, _ = x.shape
    D = 2 if bidirectional else 1
    H = h0.shape[-1]
    ys, hs, cs = [], [], []
    for b in range(B):
        L = lengths[b]
        inp = x[b, :L]                                   # (L, I)
        h_b, c_b = [], []
        for k in range(num_layers):
            outs = []
            for d in range(D):
                pre = f"l{k}_reverse." if d else f"l{k}."
                W, R, bias = params[pre + "W"], params[pre + "R"], params[pre + "b"]
                h, c = h0[k * D + d, b], c0[k * D + d, b]
                previous = torch.zeros(3 * H, dtype=x.dtype)    # [i, f, o] of the step before; none at first
                out = [None] * L
                for t in (reversed(range(L)) if d else range(L)):
                    a = inp[t] @ W + h @ R + bias
                    a_i, a_f, a_g, a_o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
                    if gate_recurrence:
                        extra = previous @ params[pre + "R_gates"]
                        a_i, a_f, a_o = a_i + extra[:H], a_f + extra[H:2 * H], a_o + extra[2 * H:]
                    if peephole == "diagonal":
                        a_i = a_i + c * params[pre + "p_i"]
                        a_f = a_f + c * params[pre + "p_f"]
                    elif peephole == "full":
                        a_i = a_i + c @ params[pre + "p_i"]
                        a_f = a_f + c @ params[pre + "p_f"]
                    i = torch.sigmoid(a_i) if input_gate else torch.ones_like(a_i)
                    f = torch.sigmoid(a_f) if forget_gate else torch.ones_like(a_f)
                    if coupled:
                        f = 1 - i
                    c = f * c + i * act[input_activation](a_g)
                    if peephole == "diagonal":
                        a_o = a_o + c * params[pre + "p_o"]
                    elif peephole == "full":
                        a_o = a_o + c @ params[pre + "p_o"]
                    o = torch.sigmoid(a_o) if output_gate else torch.ones_like(a_o)
                    h = o * act[output_activation](c)
                    previous = torch.cat([i, f, o])
                    out[t] = h
                outs.append(torch.stack(out))
                h_b.append(h)
                c_b.append(c)
            inp = torch.cat(outs, dim=-1)               # (L, D·H)
        pad = torch.zeros(T - L, D * H, dtype=x.dtype)
        ys.append(torch.cat([inp, pad]))
        hs.append(torch.stack(h_b))
        cs.append(torch.stack(c_b))
    return torch.stack(ys), torch.stack(hs, dim=1), torch.stack(cs, dim=1)
