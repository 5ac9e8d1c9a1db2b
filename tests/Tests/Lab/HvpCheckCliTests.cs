using System.Text.Json;
using Curvature.Lab;

namespace Curvature.Tests.Lab;

/// <summary>The hvp-check verb: its table, its JSON contract, and bad usage.</summary>
[Collection(ThreadSettings.Name)]
public class HvpCheckCliTests
{
    [Fact]
    public void Small_check_prints_the_table_and_writes_every_json_key()
    {
        var dir = Scratch.NewDirectory();
        var json = Path.Combine(dir, "h.json");
        var (code, output, err) = LabCli.Run("hvp-check", "--model", "mlp", "--n", "40", "--width", "16", "--repeats", "1", "--seed", "3", "--json", json);
        Assert.True(code == 0, err);
        Assert.Contains("HVP / gradient", output);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        foreach (var key in new[] { "grad_fd_rel_error", "hvp_fd_rel_error", "symmetry_rel_error", "forward_ms", "grad_ms", "hvp_ms", "hvp_over_grad" })
            Assert.True(doc.RootElement.TryGetProperty(key, out _), $"missing key {key}");
        Assert.True(doc.RootElement.GetProperty("hvp_fd_rel_error").GetDouble() < 1e-6);
        Assert.True(doc.RootElement.GetProperty("grad_fd_rel_error").GetDouble() < 1e-6);
        Assert.True(doc.RootElement.GetProperty("symmetry_rel_error").GetDouble() < 1e-8);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Theory]
    [InlineData("hvp-check", "--n", "-5")]
    [InlineData("hvp-check", "--model", "resnet")]
    [InlineData("hvp-check", "--modle", "mlp")]
    [InlineData("hvp-check", "--threads", "0")]
    [InlineData("hvp-chek")]
    public void Bad_usage_exits_with_code_2_and_an_error_before_any_work(params string[] args)
    {
        var (code, output, err) = LabCli.Run(args);
        Assert.Equal(2, code);
        Assert.False(string.IsNullOrWhiteSpace(err + output));
        Assert.DoesNotContain("hvp-check:", output); // the verb never started
    }

    [Fact]
    public void Json_into_a_missing_folder_fails_with_one_message_and_keeps_nothing_half_written()
    {
        var (code, _, err) = LabCli.Run("hvp-check", "--n", "10", "--width", "4", "--repeats", "1", "--json", "/nonexistent-folder/x.json");
        Assert.Equal(1, code);
        Assert.Contains("/nonexistent-folder", err);
    }
}
