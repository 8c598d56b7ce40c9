/**
 * The builtin corpus: simple English stories generated on this machine from a small seeded grammar, so that a fresh
 * machine without network can train a model and watch its loss fall. Story i depends only on (seed, i), so any part
 * of the corpus can be regenerated on its own (a resumed preparation starts in the middle).
 *
 * It is not real text: a small vocabulary and a few story shapes, which a nano model learns within minutes.
 */
import { Rng } from '../../core/random';

export const SYNTHETIC_DESCRIPTION =
  'Synthetic stories generated on this machine from a small seeded grammar (about 60 characters, 40 objects, ' +
  '30 places and 8 story shapes). Not real text: it needs no network, and a small model learns it quickly, so the ' +
  'loss visibly falls within minutes. Use it to check a setup; use Tiny Shakespeare or FineWeb-edu for real training.';

interface Character {
  name: string;
  /** subject, object, possessive pronouns */
  he: string;
  him: string;
  his: string;
}

const GIRLS = [
  'Lily',
  'Mia',
  'Sara',
  'Emma',
  'Zoe',
  'Anna',
  'Lucy',
  'Ella',
  'Nora',
  'Ruby',
  'Maya',
  'Ivy',
  'Rosa',
  'Clara',
  'Hana',
  'Lena',
];
const BOYS = [
  'Tom',
  'Ben',
  'Max',
  'Leo',
  'Sam',
  'Jack',
  'Finn',
  'Owen',
  'Noah',
  'Eli',
  'Omar',
  'Hugo',
  'Theo',
  'Kai',
  'Luca',
  'Ravi',
];
const ANIMALS = [
  'cat',
  'dog',
  'bird',
  'rabbit',
  'fox',
  'bear',
  'frog',
  'duck',
  'mouse',
  'owl',
  'turtle',
  'squirrel',
  'puppy',
  'kitten',
  'horse',
  'goat',
];
const ANIMAL_NAMES = [
  'Pip',
  'Fluffy',
  'Spot',
  'Coco',
  'Bella',
  'Milo',
  'Rosie',
  'Buddy',
  'Daisy',
  'Toby',
  'Nutmeg',
  'Pepper',
];
const ADJECTIVES = [
  'little',
  'big',
  'happy',
  'brave',
  'kind',
  'shy',
  'curious',
  'sleepy',
  'funny',
  'clever',
  'gentle',
  'busy',
  'tiny',
  'friendly',
];
const COLORS = ['red', 'blue', 'green', 'yellow', 'purple', 'orange', 'pink', 'white', 'brown', 'shiny'];
const OBJECTS = [
  'ball',
  'kite',
  'hat',
  'box',
  'boat',
  'car',
  'book',
  'cup',
  'drum',
  'key',
  'shell',
  'stone',
  'flower',
  'balloon',
  'blanket',
  'bucket',
  'map',
  'bell',
  'feather',
  'ribbon',
];
const PLACES = [
  'the park',
  'the forest',
  'the garden',
  'the beach',
  'the farm',
  'a small town',
  'the hill',
  'the lake',
  'the meadow',
  'the old house',
  'the river',
  'the school',
  'the market',
  'the zoo',
  'the library',
];
const WEATHER = ['sunny', 'rainy', 'windy', 'snowy', 'cloudy', 'warm', 'cold', 'bright'];
const FOODS = ['apples', 'cookies', 'bread', 'soup', 'cake', 'carrots', 'berries', 'pie', 'honey', 'pancakes'];
const GAMES = ['hide and seek', 'tag', 'catch', 'a game of pretend', 'jump rope', 'a race'];
const HAPPY = ['happy', 'glad', 'proud', 'excited', 'thankful'];
const SAD = ['sad', 'worried', 'scared', 'upset', 'lonely'];
const PROBLEMS = [
  ['got stuck in a tree', 'climbed up and got it down'],
  ['fell into the water', 'used a long stick to pull it out'],
  ['was lost in the tall grass', 'looked and looked until they found it'],
  ['broke into two pieces', 'fixed it with some glue'],
  ['was taken by the wind', 'ran after it and caught it'],
  ['rolled under a big rock', 'pushed the rock together and got it back'],
];
const MORALS = [
  'it is good to share with friends',
  'being kind makes everyone happy',
  'asking for help is a brave thing to do',
  'we should always tell the truth',
  'working together makes hard things easy',
  'it is okay to be scared, and it is good to try',
  'a good friend is always there for you',
];

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

function person(rng: Rng, not?: string): Character {
  for (;;) {
    const girl = rng.random() < 0.5;
    const name = pick(rng, girl ? GIRLS : BOYS);
    if (name === not) continue;
    return girl ? { name, he: 'she', him: 'her', his: 'her' } : { name, he: 'he', him: 'him', his: 'his' };
  }
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const a = (word: string): string => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

/** The shapes of a story; each returns its sentences. */
const SHAPES: Array<(rng: Rng) => string[]> = [
  // finding something
  (rng) => {
    const c = person(rng);
    const obj = `${pick(rng, COLORS)} ${pick(rng, OBJECTS)}`;
    const place = pick(rng, PLACES);
    return [
      `Once upon a time, there was ${a(pick(rng, ADJECTIVES))} ${c.he === 'she' ? 'girl' : 'boy'} named ${c.name}.`,
      `One ${pick(rng, WEATHER)} day, ${c.name} went to ${place}.`,
      `There, ${c.he} found ${a(obj)}.`,
      `${c.name} was very ${pick(rng, HAPPY)}. ${cap(c.he)} picked up the ${obj} and took it home.`,
      `${cap(c.he)} showed the ${obj} to ${c.his} mom. "Look what I found!" ${c.name} said.`,
      `Mom smiled and said, "What ${a(pick(rng, ['nice', 'pretty', 'special', 'lovely']))} ${obj}!"`,
      `From that day on, ${c.name} kept the ${obj} by ${c.his} bed.`,
    ];
  },
  // a problem solved with a friend
  (rng) => {
    const c = person(rng);
    const d = person(rng, c.name);
    const obj = pick(rng, OBJECTS);
    const [problem, fix] = pick(rng, PROBLEMS);
    return [
      `${c.name} and ${d.name} were best friends.`,
      `They liked to play with ${c.his} ${pick(rng, COLORS)} ${obj} in ${pick(rng, PLACES)}.`,
      `One day, the ${obj} ${problem}.`,
      `${c.name} felt ${pick(rng, SAD)}. "What can we do?" ${c.he} asked.`,
      `${d.name} said, "Do not worry. I will help you."`,
      `So the two friends ${fix}.`,
      `${c.name} hugged ${d.name}. "Thank you," ${c.he} said. They were ${pick(rng, HAPPY)} again.`,
    ];
  },
  // an animal and its day
  (rng) => {
    const animal = pick(rng, ANIMALS);
    const name = pick(rng, ANIMAL_NAMES);
    const food = pick(rng, FOODS);
    return [
      `There once was ${a(pick(rng, ADJECTIVES))} ${animal} named ${name}.`,
      `${name} lived near ${pick(rng, PLACES)} with ${pick(rng, ['a big family', 'an old friend', 'a wise owl', 'many other animals'])}.`,
      `Every morning, ${name} looked for ${food} to eat.`,
      `One ${pick(rng, WEATHER)} morning, there were no ${food} anywhere.`,
      `${name} was ${pick(rng, SAD)}, but ${name} did not give up.`,
      `${name} walked and walked until ${name} found a tree full of ${food}.`,
      `${name} shared the ${food} with ${pick(rng, ['all the other animals', 'a hungry bird', 'a little mouse', 'a tired frog'])}, and everyone was ${pick(rng, HAPPY)}.`,
    ];
  },
  // a lesson
  (rng) => {
    const c = person(rng);
    const d = person(rng, c.name);
    const obj = pick(rng, OBJECTS);
    const moral = pick(rng, MORALS);
    return [
      `${c.name} had a new ${obj}. ${cap(c.he)} did not want to share it.`,
      `${d.name} asked, "Can I play with your ${obj}?"`,
      `"No," said ${c.name}. "It is mine."`,
      `${d.name} went away and felt ${pick(rng, SAD)}.`,
      `Soon ${c.name} was alone, and playing alone was not fun.`,
      `${c.name} went to ${d.name} and said, "I am sorry. Let us play together."`,
      `They played with the ${obj} all day. ${c.name} learned that ${moral}.`,
    ];
  },
  // weather and a walk
  (rng) => {
    const c = person(rng);
    const w = pick(rng, WEATHER);
    const place = pick(rng, PLACES);
    return [
      `It was a ${w} day.`,
      `${c.name} put on ${c.his} ${pick(rng, COLORS)} ${pick(rng, ['coat', 'boots', 'hat', 'scarf'])} and went for a walk to ${place}.`,
      `On the way, ${c.he} saw ${a(pick(rng, ADJECTIVES))} ${pick(rng, ANIMALS)}.`,
      `The ${pick(rng, ['animal', 'little one'])} looked at ${c.name}, and ${c.name} looked back.`,
      `"Hello," said ${c.name}. "Do you want to come with me?"`,
      `They walked together to ${place} and played ${pick(rng, GAMES)}.`,
      `When the sun went down, ${c.name} went home and told ${c.his} dad about ${c.his} new friend.`,
    ];
  },
  // a dialogue at home
  (rng) => {
    const c = person(rng);
    const food = pick(rng, FOODS);
    return [
      `${c.name} was hungry. "Mom, can we make ${food}?" ${c.he} asked.`,
      `"Yes," said Mom. "But first you must help me."`,
      `${c.name} washed ${c.his} hands. Then ${c.he} helped Mom get a bowl and a spoon.`,
      `They worked together in the kitchen. It smelled very good.`,
      `When the ${food} ${food.endsWith('s') ? 'were' : 'was'} ready, ${c.name} took a big bite.`,
      `"This is the best ${food} ever!" ${c.name} said.`,
      `Mom laughed. ${c.name} felt ${pick(rng, HAPPY)}, because ${c.he} had helped.`,
    ];
  },
  // counting
  (rng) => {
    const c = person(rng);
    const n = 2 + rng.int(8); // 2..9
    const nums = ['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];
    const thing = pick(rng, ['ducks', 'stars', 'flowers', 'birds', 'boats', 'apples', 'shells', 'clouds']);
    return [
      `${c.name} liked to count things.`,
      `At ${pick(rng, PLACES)}, ${c.he} saw some ${thing}.`,
      `"${cap(nums.slice(0, n).join(', '))}!" ${c.he} said.`,
      `There were ${nums[n - 1]} ${thing}.`,
      `Then one more came. Now there were ${nums[n]} ${thing}.`,
      `${c.name} was ${pick(rng, HAPPY)}. Counting was ${c.his} favorite game.`,
    ];
  },
  // a brave moment
  (rng) => {
    const c = person(rng);
    const animal = pick(rng, ANIMALS);
    return [
      `${c.name} was afraid of the dark.`,
      `One night, ${c.he} heard a sound outside ${c.his} window.`,
      `${cap(c.he)} was ${pick(rng, SAD)}, but ${c.he} took a deep breath and looked out.`,
      `It was only ${a(pick(rng, ADJECTIVES))} ${animal} looking for a warm place to sleep.`,
      `${c.name} smiled. ${cap(c.he)} gave the ${animal} ${a(pick(rng, ['soft blanket', 'little box', 'warm towel']))}.`,
      `The ${animal} fell asleep, and so did ${c.name}.`,
      `After that night, ${c.name} was not afraid of the dark anymore.`,
    ];
  },
];

/** Mixes the seed and a story's index into the seed of that story's own generator. */
function storySeed(seed: number, index: number): number {
  let h = (seed ^ 0x5bd1e995) >>> 0;
  h = Math.imul(h ^ index, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

/** Story `index` of the corpus with `seed`. */
export function syntheticStory(seed: number, index: number): string {
  const rng = new Rng(storySeed(seed, index));
  const sentences = pick(rng, SHAPES)(rng);
  if (rng.random() < 0.3) sentences.push(`The end.`);
  return sentences.join(' ');
}

/** Stories generated per preparation unit (a checkpoint after each). */
export const STORIES_PER_UNIT = 64;

/** The stories of unit `unit`: indices [unit·STORIES_PER_UNIT, (unit+1)·STORIES_PER_UNIT). */
export function syntheticUnit(seed: number, unit: number, storiesPerUnit = STORIES_PER_UNIT): string[] {
  const out: string[] = [];
  for (let i = 0; i < storiesPerUnit; i++) out.push(syntheticStory(seed, unit * storiesPerUnit + i));
  return out;
}
