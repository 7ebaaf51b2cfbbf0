// TAPT Console: images dropped as folders, labelled the way the CLI reads a folder. A file's label is the longest tail
// of its folder path that is a label of the vocabulary, so dropping the label folders and dropping the folder that holds
// them both work, and a label with a "/" (Fashion-MNIST's "t-shirt/top") is the nested folder t-shirt/top, the only
// way a file system can hold it. Plain files take the chosen label.
import { toast } from "./console.js";

const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));

async function childrenOf(dir) {
  const reader = dir.createReader();
  const all = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return all;
    all.push(...batch);
  }
}

/** The longest tail of the folder path that is a label; else the whole path (the gateway refuses it by name). */
export function labelOf(folders, labels) {
  for (let i = 0; i < folders.length; i++) {
    const tail = folders.slice(i).join("/");
    if (labels.includes(tail)) return tail;
  }
  return folders.join("/");
}

/**
 * The dropped images by label (a Map of label to File[]), through the entries API; a folder whose images no label
 * names is reported in a toast (its images will be refused).
 */
export async function readLabelledDrop(dataTransfer, labels, chosenLabel) {
  const byLabel = new Map();
  const add = (label, file) => (byLabel.get(label) || byLabel.set(label, []).get(label)).push(file);
  const entries = [...(dataTransfer.items || [])].map((i) => (i.kind === "file" && i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  if (!entries.some((e) => e && e.isDirectory)) {
    for (const file of dataTransfer.files || []) add(chosenLabel, file);
    return byLabel;
  }
  const walk = async (entry, folders) => {
    if (entry.isFile) add(folders.length ? labelOf(folders, labels) : chosenLabel, await fileOf(entry));
    else for (const child of await childrenOf(entry)) await walk(child, [...folders, entry.name]);
  };
  for (const entry of entries) if (entry) await walk(entry, []);
  for (const label of byLabel.keys())
    if (!labels.includes(label)) toast(`Folder “${label}” is not a label of this vocabulary: its images will be refused.`, "error");
  return byLabel;
}
