import { describe, expect, it } from 'vitest';
import { chatPrompt, parseSftExample, renderChat } from './chat';
import { decode, EOT } from './tokenizer';

describe('chat template', () => {
  it('masks in only the assistant words and the final <|endoftext|>', () => {
    const r = renderChat([
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: 'Four.' },
    ]);
    expect(r.tokens.length).toBe(r.mask.length);
    expect(decode(r.tokens)).toBe('<|endoftext|>User: What is 2+2?\n\nAssistant: Four.<|endoftext|>');
    const counted = r.tokens.filter((_, i) => r.mask[i] === 1);
    expect(decode(counted)).toBe(' Four.<|endoftext|>');
    expect(counted.at(-1)).toBe(EOT);
  });

  it('builds a prompt that ends where the assistant answer begins', () => {
    const msgs = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Hi' },
    ];
    const p = chatPrompt(msgs);
    expect(decode(p)).toBe('<|endoftext|>System: Be brief.\n\nUser: Hi\n\nAssistant:');
    // the same tokens as the unmasked prefix of a rendered conversation
    const r = renderChat([...msgs, { role: 'assistant', content: 'Hello.' }]);
    expect(r.tokens.slice(0, p.length)).toEqual(p);
  });

  it('reads both JSONL shapes and says what is wrong with a bad one', () => {
    expect(parseSftExample({ prompt: 'a', response: 'b' })).toEqual([
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
    ]);
    expect(
      Array.isArray(
        parseSftExample({
          messages: [
            { role: 'user', content: 'x' },
            { role: 'assistant', content: 'y' },
          ],
        }),
      ),
    ).toBe(true);
    expect(parseSftExample({ messages: [{ role: 'user', content: 'x' }] })).toMatch(/last message/);
    expect(parseSftExample({ messages: [{ role: 'bot', content: 'x' }] })).toMatch(/messages\[0\]/);
    expect(parseSftExample({ text: 'x' })).toMatch(/expected/);
  });
});
