"""An independent LSTM written with torch ops, one sequence and one step at a time.

It shares no code with nplstm: the equations are typed again from docs/math.md, ragged
batches are handled by running each sequence over its own length, and autograd gives
the gradients. Keys and shapes of `params` follow nplstm's contract.
"""


def lstm(torch, params, x, h0, c0, lengths, *, num_layers, bidirectional, peephole, forget_gate):
    """x: (B, T, I) tensor; h0, c0: (L·D, B, H); lengths: list of B ints.

    Returns y (B, T, D·H) with zeros at padded steps, h_n, c_n (L·D, B, H).
    """
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
                out = [None] * L
                for t in (reversed(range(L)) if d else range(L)):
                    a = inp[t] @ W + h @ R + bias
                    a_i, a_f, a_g, a_o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
                    if peephole == "diagonal":
                        a_i = a_i + c * params[pre + "p_i"]
                        a_f = a_f + c * params[pre + "p_f"]
                    elif peephole == "full":
                        a_i = a_i + c @ params[pre + "p_i"]
                        a_f = a_f + c @ params[pre + "p_f"]
                    i = torch.sigmoid(a_i)
                    f = torch.sigmoid(a_f) if forget_gate else torch.ones_like(a_f)
                    c = f * c + i * torch.tanh(a_g)
                    if peephole == "diagonal":
                        a_o = a_o + c * params[pre + "p_o"]
                    elif peephole == "full":
                        a_o = a_o + c @ params[pre + "p_o"]
                    h = torch.sigmoid(a_o) * torch.tanh(c)
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
