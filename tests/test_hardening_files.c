/* Hostile files at the library level: the caps of the whole-file and line readers at their exact
 * bounds, a .dsq truncated while verify reads it (SIGBUS -> message and exit 2), and the
 * out-of-vocabulary message naming the model file. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dsq_reader.h"
#include "fixture_model.h"
#include "input_file.h"
#include "output_path.h"

static void write_bytes(const char *path, char c, size_t n)
{
    FILE *f = fopen(path, "wb");
    for (size_t i = 0; f && i < n; i++)
        fputc(c, f);
    if (f)
        fclose(f);
}

TEST(read_all_cap_is_exact)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cap.txt", test_tmp_dir());
    dsq_error err = {0};
    char *buf;
    size_t len;
    write_bytes(path, 'a', 100);
    CHECK_MSG(input_read_all(path, 100, "the text", 0, &buf, &len, &err) == DSQ_OK, "%s", err.msg);
    CHECK_EQ_INT(len, 100);
    CHECK(buf && buf[100] == 0);
    free(buf);
    write_bytes(path, 'a', 101);
    CHECK(input_read_all(path, 100, "the text", 0, &buf, &len, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "101 bytes, more than the 100 bytes allowed for the text");
    CHECK(buf == NULL);
    /* missing: an error unless optional */
    snprintf(path, sizeof path, "%s/absent.json", test_tmp_dir());
    CHECK(input_read_all(path, 100, "config", 0, &buf, &len, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "absent.json: cannot read config: No such file");
    CHECK(input_read_all(path, 100, "config", 1, &buf, &len, &err) == DSQ_OK && buf == NULL);
}

TEST(read_line_cap_is_exact)
{
    char path[512];
    snprintf(path, sizeof path, "%s/lines.txt", test_tmp_dir());
    FILE *f = fopen(path, "wb");
    fputs("0123456789\n\n01234567890\nlast", f);
    fclose(f);
    f = fopen(path, "rb");
    char *line = NULL;
    size_t alloc = 0, len = 0;
    dsq_error err = {0};
    CHECK(input_read_line(f, "stdin", 1, 10, &line, &alloc, &len, &err) == DSQ_OK);
    CHECK(len == 10 && strcmp(line, "0123456789") == 0);
    CHECK(input_read_line(f, "stdin", 2, 10, &line, &alloc, &len, &err) == DSQ_OK);
    CHECK(len == 0 && line[0] == 0);
    CHECK(input_read_line(f, "stdin", 3, 10, &line, &alloc, &len, &err) == DSQ_EINPUT);
    CHECK_STR_CONTAINS(err.msg, "stdin: line 3 is longer than 10 bytes");
    CHECK(alloc <= 11); /* never more than the cap and its NUL */
    fclose(f);
    f = fopen(path, "rb");
    fseek(f, -4, SEEK_END);
    CHECK(input_read_line(f, "stdin", 4, 10, &line, &alloc, &len, &err) == DSQ_OK);
    CHECK(strcmp(line, "last") == 0); /* a last line without its newline */
    CHECK(input_read_line(f, "stdin", 5, 10, &line, &alloc, &len, &err) == -1);
    fclose(f);
    free(line);
}

TEST(output_path_refuses_inputs_and_special_files)
{
    char in[512], alias[512], fresh[512];
    snprintf(in, sizeof in, "%s/input.bin", test_tmp_dir());
    snprintf(alias, sizeof alias, "%s/input-link.bin", test_tmp_dir());
    snprintf(fresh, sizeof fresh, "%s/fresh.bin", test_tmp_dir());
    write_bytes(in, 'x', 10);
    unlink(alias);
    CHECK(link(in, alias) == 0); /* a hard link: another name, the same inode */
    const char *inputs[] = {NULL, in};
    dsq_error err = {0};
    CHECK(output_path_check(fresh, inputs, 2, &err) == DSQ_OK);
    CHECK(output_path_check(alias, inputs, 2, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "the same file as the input");
    CHECK(output_path_check(test_tmp_dir(), inputs, 2, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "the output is a folder");
    CHECK(output_path_check("/dev/null", inputs, 2, &err) == DSQ_EUSAGE);
    CHECK_STR_CONTAINS(err.msg, "is a character device, not a regular file");
}

/* verify's checksum reads of a mapping whose file was truncated meanwhile: in a child, which
 * must end with exit 2 and the message naming the file (not be killed by SIGBUS). */
TEST(truncated_while_mapped_exits_2)
{
    model m;
    open_fixture_model("tiny-v2-lite", 16, &m);
    model_close(&m);
    char src[512], path[512], log[512], cmd[2048];
    snprintf(src, sizeof src, "%s/tiny-v2-lite.dsq", test_tmp_dir());
    snprintf(path, sizeof path, "%s/shrinking.dsq", test_tmp_dir());
    snprintf(log, sizeof log, "%s/child.err", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, path);
    CHECK(system(cmd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, STDERR_FILENO);
        dsq_file f;
        dsq_error err = {0};
        if (dsq_file_open(&f, path, &err) != DSQ_OK || truncate(path, 4096) != 0)
            _exit(10);
        for (uint32_t i = 0; i < f.n_tensors; i++)
            dsq_file_verify_tensor(&f, &f.tensors[i], &err);
        _exit(11); /* every read past 4096 bytes must have faulted */
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 2, "child status %#x", status);
    char msg[2048] = {0};
    FILE *f = fopen(log, "rb");
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = 0;
        fclose(f);
    }
    CHECK_STR_CONTAINS(msg, "shrinking.dsq changed while being read");
}

TEST(out_of_vocabulary_names_the_file)
{
    model m;
    open_fixture_model("tiny-v2-lite", 16, &m);
    float *logits = malloc((size_t)m.cfg->vocab_size * sizeof(float));
    int bad = m.cfg->vocab_size;
    dsq_error err = {0};
    CHECK(model_forward(&m, &bad, 1, logits, false, &err) == DSQ_EINPUT);
    char want[128];
    snprintf(want, sizeof want, "tiny-v2-lite.dsq: token id %d outside the vocabulary", bad);
    CHECK_STR_CONTAINS(err.msg, want);
    free(logits);
    model_close(&m);
}
